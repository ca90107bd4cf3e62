"""Search at scale: Chroma's HNSW index up to a million 512-d vectors, against exact search.

For each case (``clustered``: 2,000 product groups in a common cone, low intrinsic dimension
inside a group, like CLIP image embeddings: the main case; ``spread``: 100 wide clouds with
noise in all directions, close to uniform on the sphere: the hard case), vectors are inserted
in batches through the real path (``ImageIndex.upsert`` into an embedded Chroma collection
created from the ``VLAGENT_HNSW_*`` settings given here). At each checkpoint size it prints
and appends to ``--out`` (JSON lines, so a cut run still leaves its figures):

* insert throughput (vectors/s, cumulative, upsert calls only);
* p50 / p95 latency of one top-10 query through ``ImageIndex.query``, for each search ef;
* recall@10 against exact search (numpy: every query's exact top-10 over the vectors inserted
  so far, computed chunk by chunk, never holding all vectors);
* resident memory of the serving process (Chroma runs in-process: its HNSW graph is in that
  RSS), the inserting process's peak, and the on-disk size.

Inserting and querying run in child processes: Chroma applies a new search ef only to a
collection it has not loaded yet, so each search ef is measured by a fresh process that opens
the index through the settings path (as a restarted server would).

Usage::

    python benchmarks/search_scale.py --checkpoints 20000,100000 --cases clustered,spread
    nice -n 15 python benchmarks/search_scale.py --checkpoints 100000,300000,1000000 \
        --search-ef 64,128,256 --out benchmarks/results/search_scale_1m.jsonl
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from vlagent.index.store import ImageIndex
from vlagent.settings import Settings

CASES: dict[str, dict[str, float]] = {
    # clustered: many product groups inside a common cone (CLIP image embeddings share a mean
    # direction: centres ≈ 0.5 cosine apart); inside a group vectors vary along a few
    # directions (low intrinsic dimension) plus a little noise in every direction.
    "clustered": {"clusters": 2000, "common": 1.0, "spread": 0.5, "rank": 24, "noise": 0.15},
    # spread: few wide clouds with noise in all 512 directions: close to uniform, hard for HNSW.
    "spread": {"clusters": 100, "common": 0.0, "spread": 0.0, "rank": 1, "noise": 2.0},
}


def rss_mb() -> tuple[float, float]:
    """Current and peak resident memory of this process, MB (Linux /proc)."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, amount, _unit = line.split()
            values[key] = int(amount) / 1024
    return values.get("VmRSS:", 0.0), values.get("VmHWM:", 0.0)


def du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1024 / 1024


class Generator:
    """Unit vectors around fixed random centres; chunk ``i`` is always the same vectors."""

    def __init__(self, case: str, dim: int, seed: int = 0) -> None:
        spec = CASES[case]
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.noise = float(spec["noise"])
        self.spread = float(spec["spread"])
        self.rank = int(spec["rank"])
        centres = rng.standard_normal((int(spec["clusters"]), dim)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        mean = rng.standard_normal(dim).astype(np.float32)
        centres += spec["common"] * mean / np.linalg.norm(mean)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        # each cluster varies along its own few directions
        self.bases = rng.standard_normal((int(spec["clusters"]), self.rank, dim)).astype(np.float32) / np.sqrt(dim)
        self.seed = seed

    def chunk(self, index: int, size: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, index))
        which = rng.integers(0, len(self.centres), size)
        z = rng.standard_normal((size, self.rank)).astype(np.float32) * (self.spread / np.sqrt(self.rank))
        along = np.einsum("nr,nrd->nd", z, self.bases[which])
        noise = rng.standard_normal((size, self.dim)).astype(np.float32) * (self.noise / np.sqrt(self.dim))
        vecs = self.centres[which] + along + noise
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)

    def queries(self, n: int) -> np.ndarray:
        return self.chunk(10_000_000, n)  # a chunk never inserted: new points of the same clouds


class ExactTopK:
    """Exact top-k cosine neighbours of fixed queries, updated chunk by chunk (no full copy kept)."""

    def __init__(self, queries: np.ndarray, k: int) -> None:
        self.queries = queries
        self.k = k
        self.scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
        self.ids = np.zeros((len(queries), 0), dtype=np.int64)

    def add(self, vectors: np.ndarray, first_id: int) -> None:
        sims = self.queries @ vectors.T
        ids = np.broadcast_to(np.arange(first_id, first_id + len(vectors)), sims.shape)
        scores = np.concatenate([self.scores, sims], axis=1)
        all_ids = np.concatenate([self.ids, ids], axis=1)
        keep = np.argpartition(-scores, min(self.k, scores.shape[1] - 1), axis=1)[:, : self.k]
        self.scores = np.take_along_axis(scores, keep, axis=1)
        self.ids = np.take_along_axis(all_ids, keep, axis=1)


def open_index(args: argparse.Namespace, case: str, home: Path, search_ef: int) -> ImageIndex:
    settings = Settings(
        home=home, dataset=f"bench-{case}", hnsw_m=args.m, hnsw_construction_ef=args.construction_ef,
        hnsw_search_ef=search_ef,
    )  # fmt: skip
    return ImageIndex.open(settings, "bench:synthetic", args.dim)


def role_insert(args: argparse.Namespace) -> dict[str, Any]:
    """Child process: insert the case's vectors up to ``--upto`` (continuing from the count)."""
    gen = Generator(args.case, args.dim)
    index = open_index(args, args.case, args.home, args.search_ef_one)
    inserted = index.count()
    assert inserted % args.batch == 0, "the index holds a partial batch"
    seconds = 0.0
    while inserted < args.upto:
        size = min(args.batch, args.upto - inserted)
        vecs = gen.chunk(inserted // args.batch, size)
        ids = [f"v{inserted + i}" for i in range(size)]
        t0 = time.perf_counter()
        index.upsert(ids, vecs, [{"file": i} for i in ids])
        seconds += time.perf_counter() - t0
        inserted += size
        if inserted % args.report_every == 0:
            print(f"   {args.case} {inserted:>9,} inserted, {size / (time.perf_counter() - t0):6.0f} vectors/s now, "
                  f"rss {rss_mb()[0]:.0f} MB", file=sys.stderr, flush=True)  # fmt: skip
    t0 = time.perf_counter()
    count = index.count()
    seconds += time.perf_counter() - t0
    # the insert time of earlier runs into the same --work folder (a resumed or re-queried index)
    log = args.home / "insert_seconds.json"
    earlier = json.loads(log.read_text()) if log.exists() else {"seconds": 0.0, "peak_rss_mb": 0.0}
    total = {"seconds": earlier["seconds"] + seconds, "peak_rss_mb": max(earlier["peak_rss_mb"], rss_mb()[1])}
    log.write_text(json.dumps(total))
    return {"count": count, **total}


def role_query(args: argparse.Namespace) -> dict[str, Any]:
    """Child process: open the index with ``--search-ef-one`` (settings path) and time queries."""
    gen = Generator(args.case, args.dim)
    queries = gen.queries(args.queries)
    t0 = time.perf_counter()
    index = open_index(args, args.case, args.home, args.search_ef_one)
    index.query(queries[:1], k=args.k)  # loads the graph
    load_s = time.perf_counter() - t0
    latencies, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = index.query(q[None, :], k=args.k)[0]
        latencies.append((time.perf_counter() - t0) * 1000)
        found.append([int(h.id[1:]) for h in hits])
    exact = np.load(args.home / "exact.npy")
    hits_n = sum(len(set(f) & set(t)) for f, t in zip(found, exact.tolist()))
    rss, peak = rss_mb()
    return {
        "search_ef": index.hnsw.search_ef, "load_s": load_s,
        "p50_ms": float(np.percentile(latencies, 50)), "p95_ms": float(np.percentile(latencies, 95)),
        "recall_at_10": hits_n / (args.k * len(found)), "rss_mb": rss, "peak_rss_mb": peak,
    }  # fmt: skip


def child(args: argparse.Namespace, role: str, case: str, home: Path, **extra: Any) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--role", role, "--case", case, "--home", str(home),
           "--dim", str(args.dim), "--queries", str(args.queries), "-k", str(args.k), "--m", str(args.m),
           "--construction-ef", str(args.construction_ef), "--batch", str(args.batch),
           "--report-every", str(args.report_every)]  # fmt: skip
    for key, value in extra.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_case(case: str, args: argparse.Namespace, work: Path, out: Path | None) -> None:
    checkpoints = sorted(int(c) for c in args.checkpoints.split(","))
    efs = [int(e) for e in args.search_ef.split(",")]
    gen = Generator(case, args.dim)
    exact = ExactTopK(gen.queries(args.queries), args.k)
    home = work / case
    home.mkdir(parents=True, exist_ok=True)
    print(f"== {case}: M={args.m} construction_ef={args.construction_ef} dim={args.dim} "
          f"queries={args.queries} ({CASES[case]})", flush=True)  # fmt: skip
    inserted = 0
    for target in checkpoints:
        # the exact top-k over the same vectors the child inserts (regenerated, never all in memory)
        for start in range(inserted, target, args.batch):
            size = min(args.batch, target - start)
            exact.add(gen.chunk(start // args.batch, size), start)
        np.save(home / "exact.npy", exact.ids)
        got = child(args, "insert", case, home, upto=target, search_ef_one=efs[0])
        insert_s, peak_insert = got["seconds"], got["peak_rss_mb"]  # totals over every run into home
        inserted = target
        for ef in efs:
            q = child(args, "query", case, home, search_ef_one=ef)
            row: dict[str, Any] = {
                "case": case, "vectors": got["count"], "dim": args.dim, "m": args.m,
                "construction_ef": args.construction_ef, "insert_vectors_s": inserted / insert_s,
                "insert_s": insert_s, "insert_peak_rss_mb": peak_insert, "disk_mb": du_mb(home),
                "queries": args.queries, **q,
            }  # fmt: skip
            print(f"{case:9} {row['vectors']:>9,} vectors  insert {row['insert_vectors_s']:5.0f}/s  "
                  f"ef {ef:4}  p50 {row['p50_ms']:6.2f} ms  p95 {row['p95_ms']:6.2f} ms  "
                  f"recall@10 {row['recall_at_10']:.4f}  serving rss {row['rss_mb']:5.0f} MB  "
                  f"(insert peak {peak_insert:.0f} MB, load {row['load_s']:.1f} s)  disk {row['disk_mb']:.0f} MB",
                  flush=True)  # fmt: skip
            if out is not None:
                with open(out, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
    if args.work is None:  # a temp dir: free the disk before the next case
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", default="20000,100000", help="index sizes to measure at")
    parser.add_argument("--cases", default="clustered,spread", help=f"of {sorted(CASES)}")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--m", type=int, default=Settings.model_fields["hnsw_m"].default)
    parser.add_argument("--construction-ef", type=int, default=Settings.model_fields["hnsw_construction_ef"].default)
    parser.add_argument("--search-ef", default="32,64,128,256", help="search ef values to sweep")
    parser.add_argument("--batch", type=int, default=5000, help="vectors per upsert")
    parser.add_argument("--report-every", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here as it goes")
    parser.add_argument("--work", type=Path, default=None, help="index folder, kept: a rerun resumes the inserts "
                        "and can re-query with other --search-ef values (default: a temp dir, removed)")
    parser.add_argument("--role", choices=["insert", "query"], help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--upto", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--search-ef-one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:  # a child process: one JSON line on stdout
        result = role_insert(args) if args.role == "insert" else role_query(args)
        print(json.dumps(result))
        return
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.work is not None:  # kept: a later run continues the inserts or re-queries with other efs
        args.work.mkdir(parents=True, exist_ok=True)
        for case in args.cases.split(","):
            run_case(case.strip(), args, args.work, args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            run_case(case.strip(), args, Path(tmp), args.out)


if __name__ == "__main__":
    main()
