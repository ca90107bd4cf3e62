"""How fast vlagent's models run on a GPU, before and after issue 26, beside published anchors.

Real-size random models of the real architectures (``benchmarks/real_configs.py``: Chinese-CLIP
ViT-B/16, BLIP base, Qwen2-VL-2B with Qwen2.5's tokenizer from the offline GGUF, Qwen2.5-1.5B
for the agent's LLM) are built from their published configs, saved once under ``--work``, and
loaded by vlagent's own loaders. Random weights cost the real compute; what they say is noise.

One table, each row before → after where the change applies, with its published anchor:

1. CLIP indexing, images/s from JPEG files (decode included; a null index, so the pipeline is
   measured, not Chroma), and ``vlagent index`` into Chroma. Before: float32, decoding in
   threads and preprocessing in the encoding thread (the old path). After: the defaults
   (float16 on a GPU, decoding + preprocessing in DataLoader worker processes). Anchor:
   clip-retrieval, ViT-B/16 ≈ 1,100 images/s per A100 from files (ViT-L/14 312/s).
2. BLIP captions/s (batches of 16, the caption settings' 3 beams, 30 tokens). Before float32,
   after the default (float16 on a GPU).
3. Qwen2-VL-2B VQA in-process, questions/min (one 640x480 image, ``--vqa-tokens`` tokens).
   Before: the checkpoint's bf16 (what transformers 5 loads by default, CPU too); after: the
   default (bf16 on a GPU, float32 on CPU). Anchor: lmdeploy, ≈ 300 ms a request, 5-8 requests/s
   on A10/A100.
4. The same through vLLM (``vlagent serve all``: the LLM and the VLM on one GPU, 0.45 each; needs
   vLLM: ``VLAGENT_VLLM_PYTHON`` or importable here), ``--concurrency`` questions in flight.
   Anchor: ≈ 3,700 single-image requests/min on one H100 (vLLM; SGLang ≈ 4,100). The VLM
   server's KV-cache size is read from its log; ``--vllm-before`` also starts it the old way
   (no pixel cap, 0.9 of the GPU) to compare.
5. One question's latency end to end, p50: ``agent.invoke`` of a vqa question with an image
   (classify with the LLM, the vqa tool, the answer written by the LLM; OCR off), through vLLM
   when it is here, else in-process.
6. Peak GPU memory of each in-process part (``torch.cuda.max_memory_allocated``), and what the
   vLLM servers took.

``python benchmarks/gpu_bench.py`` on a GPU machine (first run builds ~8 GB of models under
``~/.cache/vlagent/bench``); ``--small`` runs the same code with tiny models on CPU in well under a
minute (``tests/test_gpu_bench.py`` runs it); ``--json FILE`` also writes the rows.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_configs as rc  # noqa: E402 - the builders live beside this script

from vlagent.data.images import open_source  # noqa: E402
from vlagent.models import loader, loading  # noqa: E402
from vlagent.settings import Settings  # noqa: E402

SMALL_AFTER = "; --small: after = 2 decode processes on CPU (their start-up dominates 12 images)"
#: Qwen2-VL's own per-image pixel cap (16,384 tokens): what vLLM sized its start-up check for before issue 26
QWEN2_VL_OWN_MAX_PIXELS = 12_845_056
QUESTIONS = ["这件衣服是什么颜色的？", "这是什么材质的？", "图中商品适合什么场合？", "What is shown in the picture?",
             "这款包有几个口袋？", "这双鞋是什么风格？", "衣服上有什么图案？", "Is it for men or women?"]  # fmt: skip


@dataclass
class Row:
    measure: str
    unit: str
    before: float | None = None
    after: float | None = None
    anchor: str = "—"
    memory: str = ""
    note: str = ""

    def cells(self) -> list[str]:
        def fmt(v: float | None) -> str:
            if v is None:
                return "—"
            return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}" if v >= 10 else f"{v:,.2f}"

        gain = ""
        if self.before and self.after:  # how many times better: faster, or less time
            ratio = self.before / self.after if self.unit.startswith("ms") else self.after / self.before
            gain = f" ({ratio:.1f}x)"
        return [self.measure, self.unit, fmt(self.before), fmt(self.after) + gain, self.anchor, self.memory, self.note]


@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    device: str
    rows: list[Row] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def small(self) -> bool:
        return bool(self.args.small)

    def settings(self, **overrides: Any) -> Settings:
        base: dict[str, Any] = {"home": self.work / "home", "device": self.device, "ocr_backend": "none"}
        return Settings(**{**base, **overrides})


# --------------------------------------------------------------------------------------------- helpers
def cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@contextmanager
def gpu_peak(into: list[str]) -> Iterator[None]:
    """Appends the peak GPU memory allocated inside the block (nothing on CPU)."""
    import torch

    if not cuda():
        yield
        return
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    yield
    into.append(f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


def free_models() -> None:
    import gc

    import torch

    loading.clear()
    gc.collect()
    if cuda():
        torch.cuda.empty_cache()


def make_photos(folder: Path, n: int, side: int) -> list[str]:
    """``n`` product-like JPEGs (a shape on a plain background, texture, noise) of about
    ``side`` x ``side``; JPEG q90 as shops upload them."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"p{i:05d}.jpg" for i in range(n)]
    todo = [(folder / name, i, side) for i, name in enumerate(names) if not (folder / name).is_file()]
    if todo:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            list(pool.map(lambda job: _photo(*job), todo))
    return names


def _photo(path: Path, seed: int, side: int) -> None:
    rng = np.random.default_rng(seed)
    w, h = side, int(side * rng.uniform(0.75, 1.0))
    img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(200, 256, 3)))
    draw = ImageDraw.Draw(img)
    colour = tuple(int(v) for v in rng.integers(0, 255, 3))
    draw.rounded_rectangle([w * 0.2, h * 0.1, w * 0.8, h * 0.9], radius=side // 10, fill=colour)
    for _ in range(12):
        x, y = rng.integers(0, w), rng.integers(0, h)
        draw.ellipse([x, y, x + side // 20, y + side // 20], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    noise = rng.normal(0, 12, (h, w, 3))
    arr = np.clip(np.asarray(img.filter(ImageFilter.GaussianBlur(1)), dtype=np.float32) + noise, 0, 255)
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, "JPEG", quality=90)
    path.write_bytes(buf.getvalue())


class NullIndex:
    """What ``index_images`` writes to, minus Chroma: the pipeline's own speed."""

    name, model_id = "null", "null"

    def __init__(self) -> None:
        self.vectors = 0

    def existing(self, ids: list[str]) -> dict[str, Any]:
        return {}

    def update_metadata(self, ids: list[str], metas: list[dict[str, Any]]) -> None:  # pragma: no cover
        pass

    def upsert(self, ids: list[str], vectors: np.ndarray, metas: list[dict[str, Any]]) -> None:
        self.vectors += len(ids)

    def count(self) -> int:
        return self.vectors


# --------------------------------------------------------------------------------------------- models
def build_models(b: Bench) -> dict[str, Path]:
    tiny, place = b.small, ("cuda" if cuda() else "cpu")
    size = "tiny" if tiny else "real"
    # the real tokenizer from the GGUF takes ~20 s to read once: --small uses the stand-in unless told
    gguf = b.args.gguf or (None if tiny else Settings().resolved_gguf)
    tok_dir, b.facts["qwen tokenizer"] = rc.qwen2_tokenizer(b.work, gguf, b.args.qwen_tokenizer)
    size += "-" + tok_dir.name  # a model keeps the tokenizer it was built with
    t0 = time.perf_counter()
    models = {
        "clip": rc.build_chinese_clip(b.work / f"chinese-clip-vit-b16-{'tiny' if tiny else 'real'}", tiny, place),
        "caption": rc.build_blip_caption(b.work / f"blip-caption-base-{'tiny' if tiny else 'real'}", tiny, place),
        "vqa": rc.build_qwen2_vl(b.work / f"qwen2-vl-2b-{size}", tok_dir, tiny, place),
        "llm": rc.build_qwen2_llm(b.work / f"qwen2.5-1.5b-{size}", tok_dir, tiny, place),
    }
    b.facts["models"] = ", ".join(f"{k} {rc.parameters(v) / 1e6:,.0f}M" for k, v in models.items())
    b.facts["models built/found in"] = f"{time.perf_counter() - t0:.1f} s"
    free_models()
    return models


# --------------------------------------------------------------------------------------------- 1. indexing
def bench_index(b: Bench, clip_dir: Path) -> None:
    from vlagent.index.build import decode_processes_for, index_images
    from vlagent.index.store import ImageIndex

    n, side = (12, 160) if b.small else (b.args.images, 800)
    folder = b.work / f"photos-{n}x{side}"
    make_photos(folder, n, side)
    batch = 4 if b.small else 256
    modes = {
        "before": {"model_dtype": "float32", "clip_decode_processes": 0},
        "after": {"clip_decode_processes": 2} if b.small else {},  # CPU: threads by default; --small shows the GPU path
    }
    speed: dict[str, float] = {}
    chroma: dict[str, float] = {}
    mem: list[str] = []
    for mode, extra in modes.items():
        s = b.settings(clip_model=str(clip_dir), clip_batch_size=batch, index_path=b.work / f"index-{mode}", **extra)
        encoder = loader.load("clip", s)
        if mode == "after":
            b.facts["clip"] = f"{encoder.place.dtype}, attention {encoder.place.attn or 'default'}, decode processes {decode_processes_for(encoder)}"
        with open_source(folder) as source:
            index_images(source, NullIndex(), encoder, batch_size=batch)  # warm-up: kernels, worker start-up paths
            with gpu_peak(mem if mode == "after" else []):
                t0 = time.perf_counter()
                summary = index_images(source, NullIndex(), encoder, batch_size=batch)
                speed[mode] = summary.indexed / (time.perf_counter() - t0)
            shutil.rmtree(b.work / f"index-{mode}", ignore_errors=True)
            real = ImageIndex.open(s, encoder.model_id, encoder.dim)
            t0 = time.perf_counter()
            summary = index_images(source, real, encoder, batch_size=batch)
            chroma[mode] = summary.indexed / (time.perf_counter() - t0)
        free_models()
    b.rows.append(Row("Chinese-CLIP ViT-B/16 indexing from JPEG files (decode included)", "images/s", speed["before"],
                      speed["after"], "clip-retrieval: ≈1,100/s per A100 (ViT-B/16), 312/s (ViT-L/14)",
                      ", ".join(mem), f"{n} JPEGs {side}px, batch {batch}" + SMALL_AFTER * b.small))  # fmt: skip
    b.rows.append(Row("`vlagent index` into Chroma (embedded)", "images/s", chroma["before"], chroma["after"], "—", "",
                      "Chroma's upserts on one CPU core included"))  # fmt: skip


# --------------------------------------------------------------------------------------------- 2. captions
def bench_captions(b: Bench, blip_dir: Path, photos: list[Image.Image]) -> None:
    batch = 2 if b.small else 16
    rounds = 1 if b.small else 4
    tokens = 8 if b.small else 30
    speed: dict[str, float] = {}
    mem: list[str] = []
    for mode, extra in {"before": {"model_dtype": "float32"}, "after": {}}.items():
        s = b.settings(caption_model=str(blip_dir), caption_backend="transformers", caption_max_new_tokens=tokens, **extra)
        engine = loader.load("caption", s)
        images = (photos * batch)[:batch]
        engine.generate(images)  # warm-up
        with gpu_peak(mem if mode == "after" else []):
            t0 = time.perf_counter()
            for _ in range(rounds):
                engine.generate(images)
            speed[mode] = rounds * batch / (time.perf_counter() - t0)
        if mode == "after":
            b.facts["caption"] = f"{engine.place.dtype}"
        free_models()
    b.rows.append(Row("BLIP-base captions", "captions/s", speed["before"], speed["after"], "—", ", ".join(mem),
                      f"batches of {batch}, 3 beams, up to {tokens} tokens"))  # fmt: skip


# --------------------------------------------------------------------------------------------- 3. VQA in-process
def bench_vqa_inprocess(b: Bench, vlm_dir: Path, photos: list[Image.Image]) -> None:
    from vlagent.models.vqa import shrink

    n = 2 if b.small else 12
    tokens = b.args.vqa_tokens
    image = shrink(photos[0].resize((640, 480)), 640)
    minutes: dict[str, float] = {}
    p50: dict[str, float] = {}
    mem: list[str] = []
    for mode, extra in {"before": {"model_dtype": "bfloat16"}, "after": {}}.items():
        engine = loader.load("vqa", b.settings(vqa_backend="transformers", vqa_model=str(vlm_dir), vqa_max_new_tokens=tokens, **extra))
        engine.answer([image], QUESTIONS[0])  # warm-up
        times = []
        with gpu_peak(mem if mode == "after" else []):
            for i in range(n):
                t0 = time.perf_counter()
                engine.answer([image], QUESTIONS[i % len(QUESTIONS)])
                times.append(time.perf_counter() - t0)
        minutes[mode] = 60 / statistics.mean(times)
        p50[mode] = 1000 * statistics.median(times)
        if mode == "after":
            b.facts["vqa in-process"] = f"{engine.place.dtype}, attention {engine.place.attn or 'default'}"
        free_models()
    note = (f"one 640x480 image, {tokens} new tokens, one at a time; before = the checkpoint's bf16 on any device "
            "(transformers 5's default), after = auto (on CPU float32 unless it has native bf16)")
    b.rows.append(Row("Qwen2-VL-2B VQA in-process", "questions/min", minutes["before"], minutes["after"],
                      "lmdeploy: 5-8 requests/s on A10/A100", ", ".join(mem), note))  # fmt: skip
    b.rows.append(Row("Qwen2-VL-2B VQA in-process, one question", "ms p50", p50["before"], p50["after"],
                      "lmdeploy: ≈300 ms a request", "", ""))  # fmt: skip


# --------------------------------------------------------------------------------------------- 4-5. vLLM, end to end
def vllm_here(settings: Settings) -> str | None:
    """Why vLLM cannot run here (None: it can)."""
    from vlagent.serving.commands import vllm_available

    if not vllm_available(settings):
        return "vLLM is not installed here (set VLAGENT_VLLM_PYTHON to a vLLM environment's python)"
    return None


def kv_cache_tokens(log: Path) -> str:
    """vLLM's "GPU KV cache size: N tokens" line from a server log."""
    try:
        found = re.findall(r"KV cache size: ([\d,]+) tokens", log.read_text(errors="replace"))
    except OSError:
        return "?"
    return found[-1] if found else "?"


@contextmanager
def vllm_servers(b: Bench, what: str, **overrides: Any) -> Iterator[tuple[Settings, list[Any]]]:
    from vlagent.serving.commands import build_specs
    from vlagent.serving.process import ServerProcess, free_port

    s = b.settings(serve_llm_port=free_port(), serve_vlm_port=free_port(), **overrides)
    servers = [ServerProcess(spec, b.work / "logs" / f"{spec.role}-{int(time.time())}.log") for spec in build_specs(s, what, "vllm")]  # type: ignore[arg-type]
    try:
        for server in servers:  # one after the other: each sizes its KV cache from what is free
            server.start()
            server.wait_ready(s.serve_startup_timeout)
        yield s, servers
    finally:
        for server in reversed(servers):
            server.stop()


def gpu_used() -> str:
    import torch

    if not cuda():
        return ""
    free, total = torch.cuda.mem_get_info()
    return f"{(total - free) / 2**30:.1f} GiB of {total / 2**30:.0f}"


def bench_vllm(b: Bench, models: dict[str, Path], photos: list[Image.Image]) -> None:
    from vlagent.models.vqa import OpenAIVqa
    from vlagent.models.vqa import shrink

    common = {"vqa_model": str(models["vqa"]), "llm_model": str(models["llm"]), "serve_max_model_len": 4096,
              "vqa_max_new_tokens": b.args.vqa_tokens, "llm_max_tokens": 64, "request_timeout": 600}  # fmt: skip
    why = vllm_here(b.settings(**common))
    if why:
        b.rows.append(Row("Qwen2-VL-2B VQA through vLLM", "questions/min", anchor="≈3,700 single-image requests/min on one H100 (vLLM); SGLang ≈4,100", note=f"not run: {why}"))
        bench_e2e(b, models, photos, None)
        return
    image = shrink(photos[0].resize((640, 480)), 640)
    n, concurrency = (8, 4) if b.small else (b.args.requests, b.args.concurrency)
    before_rate: float | None = None
    if b.args.vllm_before:
        old = {"serve_vlm_max_pixels": QWEN2_VL_OWN_MAX_PIXELS, "serve_gpu_memory_utilization": 0.9}
        with vllm_servers(b, "vlm", **common, **old) as (s, servers):
            b.facts["vLLM before: VLM KV cache"] = kv_cache_tokens(servers[0].log_path) + " tokens"
            before_rate = _vllm_rate(OpenAIVqa(s.model_copy(update={"vqa_base_url": servers[0].spec.base_url})), image, n, concurrency)
    with vllm_servers(b, "all", **common) as (s, servers):
        used = gpu_used()
        vlm = servers[-1]
        b.facts["vLLM after: VLM KV cache"] = kv_cache_tokens(vlm.log_path) + " tokens"
        client = OpenAIVqa(s.model_copy(update={"vqa_backend": "openai", "vqa_base_url": vlm.spec.base_url}))
        client.answer_with_usage([image], QUESTIONS[0])  # warm-up
        rate = _vllm_rate(client, image, n, concurrency)
        b.rows.append(Row("Qwen2-VL-2B VQA through vLLM", "questions/min", before_rate, rate,
                          "≈3,700 single-image requests/min on one H100 (vLLM); SGLang ≈4,100", used,
                          f"{n} questions, {concurrency} in flight, {b.args.vqa_tokens} tokens each; LLM + VLM on one GPU"))  # fmt: skip
        urls = {"llm_backend": "openai", "llm_base_url": servers[0].spec.base_url, "vqa_backend": "openai",
                "vqa_base_url": vlm.spec.base_url, "serve_llm_name": None}  # fmt: skip
        bench_e2e(b, models, photos, s.model_copy(update=urls))


def _vllm_rate(client: Any, image: Image.Image, n: int, concurrency: int) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(lambda i: client.answer_with_usage([image], QUESTIONS[i % len(QUESTIONS)]), range(n)))
    return 60 * n / (time.perf_counter() - t0)


def bench_e2e(b: Bench, models: dict[str, Path], photos: list[Image.Image], served: Settings | None) -> None:
    """One vqa question through ``agent.invoke`` (classify, vqa, answer), p50 over a few."""
    from vlagent import build_agent

    folder = b.work / "e2e-photos"
    folder.mkdir(exist_ok=True)
    for i, photo in enumerate(photos[:4]):
        photo.resize((640, 480)).save(folder / f"item{i}.jpg", quality=90)
    if served is None:
        s = b.settings(llm_backend="transformers", llm_model=str(models["llm"]), llm_max_tokens=64 if not b.small else 8,
                       vqa_backend="transformers", vqa_model=str(models["vqa"]), vqa_max_new_tokens=b.args.vqa_tokens,
                       caption_model=str(models["caption"]), clip_model=str(models["clip"]))  # fmt: skip
        where = "in-process (transformers LLM and VLM)"
    else:
        s = served.model_copy(update={"caption_model": str(models["caption"]), "clip_model": str(models["clip"])})
        where = "through vLLM (LLM + VLM servers)"
    n = 2 if b.small else 20
    mem: list[str] = []
    agent = build_agent(s, images=[folder], auto_index=False, use_cache=False)
    agent.invoke(QUESTIONS[0], images=["item0.jpg"])  # warm-up
    times, kinds = [], []
    with gpu_peak(mem if served is None else []):
        for i in range(n):
            t0 = time.perf_counter()
            answer = agent.invoke(QUESTIONS[(i + 1) % len(QUESTIONS)], images=[f"item{i % 4}.jpg"])
            times.append(time.perf_counter() - t0)
            kinds.append(f"{answer.type}{'' if answer.text else ' (no text)'}")
    free_models()
    b.facts["end-to-end answers"] = ", ".join(sorted(set(kinds)))
    b.rows.append(Row("one vqa question end to end (`agent.invoke`)", "ms p50", None, 1000 * statistics.median(times),
                      "≈300 ms a Qwen2-VL-2B request (lmdeploy)", ", ".join(mem),
                      f"{where}; classify + vqa + answer, OCR off; {n} questions"))  # fmt: skip


# --------------------------------------------------------------------------------------------- main
def table(b: Bench) -> str:
    head = ["measure", "unit", "before", "after", "anchor (published, one GPU)", "GPU memory", "how"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---", "---", "---:", "---:", "---", "---", "---"]) + "|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in b.rows]
    return "\n".join(lines)


def environment(b: Bench) -> None:
    import torch
    import transformers

    b.facts["device"] = torch.cuda.get_device_name(0) if cuda() else f"CPU ({os.cpu_count()} cores)"
    b.facts["versions"] = f"torch {torch.__version__}, transformers {transformers.__version__}"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="tiny models on CPU (the test suite runs this)")
    p.add_argument("--work", type=Path, default=None, help="where models and photos are kept (default ~/.cache/vlagent/bench)")
    p.add_argument("--images", type=int, default=2000, help="JPEGs to index")
    p.add_argument("--requests", type=int, default=512, help="VQA questions sent to vLLM")
    p.add_argument("--concurrency", type=int, default=64, help="VQA questions in flight against vLLM")
    p.add_argument("--vqa-tokens", type=int, default=32, help="tokens a VQA answer generates")
    p.add_argument("--vllm-before", action="store_true", help="also start the VLM server the old way (no pixel cap, 0.9)")
    p.add_argument("--gguf", type=Path, default=None, help="the offline GGUF whose tokenizer the Qwen models get")
    p.add_argument("--qwen-tokenizer", type=Path, default=None, help="a Qwen2 tokenizer folder made before (carried to a GPU machine)")
    p.add_argument("--only", default="index,captions,vqa,vllm", help="parts to run (comma-separated)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows and facts here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import logging

    args = parse(argv)
    if args.small:
        args.vqa_tokens = min(args.vqa_tokens, 8)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("vlagent.agent.build").setLevel(logging.ERROR)  # the tools left out on purpose (OCR, the index)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    work = args.work or (Settings().home / "bench")
    work.mkdir(parents=True, exist_ok=True)
    device = "cpu" if args.small else ("cuda" if cuda() else "cpu")
    b = Bench(args, work, device)
    environment(b)
    started = time.perf_counter()
    models = build_models(b)
    photos = [Image.open(work / f"photos-{16}x{256}" / n).convert("RGB") for n in make_photos(work / "photos-16x256", 16, 256)]
    parts: dict[str, Callable[[], None]] = {
        "index": lambda: bench_index(b, models["clip"]),
        "captions": lambda: bench_captions(b, models["caption"], photos),
        "vqa": lambda: bench_vqa_inprocess(b, models["vqa"], photos),
        "vllm": lambda: bench_vllm(b, models, photos),
    }
    for name in [p.strip() for p in args.only.split(",") if p.strip()]:
        t0 = time.perf_counter()
        parts[name]()
        b.facts[f"time: {name}"] = f"{time.perf_counter() - t0:.1f} s"
    b.facts["total"] = f"{time.perf_counter() - started:.1f} s"
    print(table(b))
    print()
    for key, value in b.facts.items():
        print(f"- {key}: {value}")
    if args.json:
        args.json.write_text(json.dumps({"rows": [asdict(r) for r in b.rows], "facts": b.facts}, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
