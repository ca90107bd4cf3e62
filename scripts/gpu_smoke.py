"""Real-weights smoke test for the first machine that reaches the model hub (a GPU machine).

No real CLIP, BLIP or VLM weights were ever loaded where vlagent is developed (no hub there):
this runs each role once on real weights and a few of the sample suite's product photos, and
prints one PASS / FAIL / SKIP line per check (exit 1 on any FAIL):

* ``clip``     Chinese-CLIP: 3 photos and their 3 titles; each photo's own title ranks first
               (random weights would not), on the resolved device and dtype, 52-token context;
* ``index``    ``vlagent index`` of the photos (DataLoader decode processes on a GPU), then a
               search by each title finds its photo;
* ``caption``  BLIP captions of the photos (English words);
* ``match``    BLIP's ITM head: a photo's caption fits it better than another photo's caption;
* ``vqa``      Qwen2-VL in-process (or the configured VLM server): one question, two images;
* ``llm``      the configured LLM (transformers, llama.cpp or a server): a short answer;
* ``ocr``      rapidocr on a label photo;
* ``serve``    ``vlagent serve vlm`` (vLLM, with the project's flags): one image, then two in one
               request; the second request's prompt grows by the second image's tokens;
* ``finetune`` two epochs on the sample suite, interrupted after step 2 and resumed from
               ``last.pt`` (the CUDA RNG state included): the resumed run finishes every step.

The models are the settings' (``VLAGENT_*``, hub profile defaults; the ITM model is
``VLAGENT_MATCH_BLIP_MODEL`` or ``Salesforce/blip-itm-base-coco``). Usage:
``python scripts/gpu_smoke.py [--only clip,caption] [--skip serve,finetune] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vlagent.data.annotations import read_annotations
from vlagent.data.images import load_image_file, open_source
from vlagent.errors import one_line
from vlagent.models import loader, loading
from vlagent.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "evals" / "suites" / "sample"
PHOTOS = ("red_dress.jpg", "blue_shirt.jpg", "brown_handbag.jpg")
LABEL = "label_cotton.jpg"
DEFAULT_ITM = "Salesforce/blip-itm-base-coco"


class Skip(Exception):
    """This check cannot run here (not configured, engine missing): SKIP with the reason."""


@dataclass
class Result:
    check: str
    status: str  # PASS | FAIL | SKIP
    seconds: float
    detail: str


@dataclass
class Smoke:
    settings: Settings
    work: Path
    photos: list[Path]
    titles: list[str]
    captions: list[str] = field(default_factory=list)  # the caption check's, for the match check

    def images(self) -> list[Image.Image]:
        return [load_image_file(p) for p in self.photos]


def _placement(model: Any) -> str:
    p = next(model.parameters())
    attn = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return f"{p.device}, {str(p.dtype).removeprefix('torch.')}" + (f", {attn}" if attn else "")


# --------------------------------------------------------------------------------------------- checks
def check_clip(sm: Smoke) -> str:
    encoder = loader.load("clip", sm.settings)
    sims = encoder.encode_images(sm.images()) @ encoder.encode_texts(sm.titles).T
    right = int(np.sum(np.argmax(sims, axis=1) == np.arange(len(sm.titles))))
    context = getattr(encoder, "context_length", "?")
    detail = f"own title first for {right}/{len(sm.titles)} photos; {_placement(encoder.model)}; text context {context}"
    assert right == len(sm.titles), detail
    return detail


def check_index(sm: Smoke) -> str:
    from vlagent.index.build import decode_processes_for, index_images
    from vlagent.index.store import ImageIndex

    encoder = loader.load("clip", sm.settings)
    folder = sm.work / "catalogue"
    folder.mkdir(exist_ok=True)
    for p in sm.photos:
        shutil.copy(p, folder / p.name)
    s = sm.settings.model_copy(update={"index_path": sm.work / "index"})
    index = ImageIndex.open(s, encoder.model_id, encoder.dim)
    with open_source(folder) as source:
        summary = index_images(source, index, encoder, batch_size=s.clip_batch_size)
    hits = index.query(encoder.encode_texts(sm.titles), k=1)
    found = [h[0].image for h in hits]
    detail = f"{summary.indexed} indexed ({decode_processes_for(encoder)} decode processes); search by title → {found}"
    assert summary.indexed == len(sm.photos) and found == [p.name for p in sm.photos], detail
    return detail


def check_caption(sm: Smoke) -> str:
    s = sm.settings.model_copy(update={"caption_backend": "transformers"})
    engine = loader.load("caption", s)
    captions = engine.generate(sm.images())
    sm.captions = captions
    detail = f"{[c[:60] for c in captions]}; {_placement(engine.model)}"
    assert all(c.strip() and any(ch.isalpha() and ch.isascii() for ch in c) for c in captions), detail
    return detail


def check_match(sm: Smoke) -> str:
    from vlagent.models.blip_itm import blip_matcher

    captions = sm.captions
    if not captions:
        raise Skip("needs the caption check's captions")
    s = sm.settings.model_copy(update={"match_blip_model": sm.settings.match_blip_model or DEFAULT_ITM})
    matcher = blip_matcher(s)
    images = sm.images()
    right = [matcher.probability(images[i], captions[i]) for i in range(len(images))]
    wrong = [matcher.probability(images[i], captions[(i + 1) % len(images)]) for i in range(len(images))]
    detail = f"P(own caption) {[round(p, 2) for p in right]}, P(another's) {[round(p, 2) for p in wrong]}; {_placement(matcher.model)}"
    assert all(r > w for r, w in zip(right, wrong)), detail
    return detail


def check_vqa(sm: Smoke) -> str:
    engine = loader.load("vqa", sm.settings)
    answer = engine.answer(sm.images()[:2], "这两件商品分别是什么？")
    where = _placement(engine.model) if hasattr(engine, "model") and not isinstance(engine.model, str) else f"server {sm.settings.vqa_base_url}"
    detail = f"{answer[:120]!r}; {where}"
    assert answer.strip(), detail
    return detail


def check_llm(sm: Smoke) -> str:
    from vlagent.models.llm import build_chat_model

    reply = build_chat_model(sm.settings).invoke(f"用一句话介绍这件商品：{sm.titles[0]}")
    text = str(getattr(reply, "content", reply)).strip()
    assert text, "empty answer"
    return f"{text[:120]!r}"


def check_ocr(sm: Smoke) -> str:
    lines = loader.load("ocr", sm.settings).read(load_image_file(SAMPLE / "images" / LABEL))
    text = " ".join(line.text for line in lines)
    assert text.strip(), "no text read"
    return repr(text[:120])


def check_serve(sm: Smoke) -> str:
    from vlagent.models.vqa import OpenAIVqa
    from vlagent.serving.commands import build_specs, require_engine, vllm_available
    from vlagent.serving.process import ServerProcess, free_port

    s = sm.settings.model_copy(update={"serve_vlm_port": free_port()})
    if not vllm_available(s):
        raise Skip("vLLM is not installed (VLAGENT_VLLM_PYTHON or pip install 'vlagent[vllm]')")
    require_engine("vllm", s)
    (spec,) = build_specs(s, "vlm", "vllm")
    server = ServerProcess(spec, sm.work / "vlm-server.log")
    server.start()
    try:
        server.wait_ready(s.serve_startup_timeout)
        client = OpenAIVqa(s.model_copy(update={"vqa_backend": "openai", "vqa_base_url": spec.base_url}))
        images = sm.images()
        one, used_one = client.answer_with_usage(images[:1], "这是什么商品？")
        two, used_two = client.answer_with_usage(images[:2], "这两件商品有什么不同？")
    finally:
        server.stop()
    detail = f"prompt tokens {used_one.get('input_tokens')} → {used_two.get('input_tokens')} with a second image; {two[:80]!r}"
    assert one.strip() and two.strip() and used_two.get("input_tokens", 0) > used_one.get("input_tokens", 0), detail
    return detail


def check_finetune(sm: Smoke) -> str:
    import torch

    from vlagent.finetune.data import match_pairs, split_pairs
    from vlagent.finetune.towers import towers_for
    from vlagent.finetune.train import FinetuneConfig, finetune, load_checkpoint

    loading.clear("clip")  # fine-tuning trains the weights in place: its own copy
    s = sm.settings
    workdir = sm.work / "finetune"
    config = FinetuneConfig(epochs=2, batch_size=4, lr=1e-5, save_every=1)
    steps: list[int] = []

    def stop_at_2(step: int) -> None:
        steps.append(step)
        if step == 2:
            raise KeyboardInterrupt

    with open_source(SAMPLE / "images") as source:
        split = split_pairs(match_pairs(read_annotations(SAMPLE / "train_annotation.csv"), source).pairs, 0.25, 0)
        towers = towers_for(loader.load("clip", s), s.clip_model, s.clip_pretrained)
        try:
            finetune(towers, source, split, workdir, config, progress=False, on_step=stop_at_2)
        except KeyboardInterrupt:
            pass
        saved = load_checkpoint(workdir / "last.pt")
        loading.clear("clip")
        towers = towers_for(loader.load("clip", s), s.clip_model, s.clip_pretrained)
        report = finetune(towers, source, split, workdir, config, progress=False, on_step=steps.append)
    loading.clear("clip")
    cuda_rng = "cuda" in saved["rng"]
    detail = f"resumed from {report.resumed_from}, {report.steps} steps, R@1 {report.before.r1:.2f} → {report.best.r1:.2f}; CUDA RNG saved: {cuda_rng}"
    assert report.resumed_from and steps[:2] == [1, 2] and steps[-1] == report.steps, detail
    assert cuda_rng == torch.cuda.is_available(), detail
    return detail


CHECKS: dict[str, Callable[[Smoke], str]] = {
    "clip": check_clip, "index": check_index, "caption": check_caption, "match": check_match, "vqa": check_vqa,
    "llm": check_llm, "ocr": check_ocr, "serve": check_serve, "finetune": check_finetune,
}  # fmt: skip


def run(name: str, check: Callable[[Smoke], str], sm: Smoke, verbose: bool) -> Result:
    t0 = time.perf_counter()
    try:
        status, detail = "PASS", check(sm)
    except Skip as exc:
        status, detail = "SKIP", str(exc)
    except Exception as exc:  # noqa: BLE001 - every failure is one line; --verbose for the trace
        status, detail = "FAIL", one_line(exc, 400)
        if verbose:
            traceback.print_exc()
    return Result(name, status, round(time.perf_counter() - t0, 1), detail)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="", help="checks to run, comma-separated (default: all)")
    p.add_argument("--skip", default="", help="checks to leave out, comma-separated")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--verbose", action="store_true", help="print the traceback of a failure")
    args = p.parse_args(argv)
    names = [n for n in (args.only.split(",") if args.only else CHECKS) if n and n not in args.skip.split(",")]
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        p.error(f"unknown check(s) {unknown}: choose from {', '.join(CHECKS)}")
    titles = {a.image: a.title for a in read_annotations(SAMPLE / "train_annotation.csv")}
    settings = Settings()
    print(f"device {settings.resolved_device()}, dtype {settings.model_dtype}, models: clip {settings.clip_model}, "
          f"caption {settings.caption_model}, vqa {settings.vqa_model}, llm {settings.llm_model}")  # fmt: skip
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="vlagent-smoke-") as tmp:
        sm = Smoke(settings, Path(tmp), [SAMPLE / "images" / n for n in PHOTOS], [titles[n] for n in PHOTOS])
        for name in names:
            result = run(name, CHECKS[name], sm, args.verbose)
            results.append(result)
            print(f"{result.status:4}  {name:8} {result.seconds:7.1f} s  {result.detail}", flush=True)
    failed = [r.check for r in results if r.status == "FAIL"]
    print(f"{len(results) - len(failed)} of {len(results)} checks did not fail" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], ensure_ascii=False, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
