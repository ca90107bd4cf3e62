"""Text → image retrieval on the sample suite, with and without the image-text index.

    python -m vlagent.evals.retrieval_eval                      # titled, half and untitled catalogue
    python -m vlagent.evals.retrieval_eval --out runs/retrieval.json

The queries (``suites/sample/retrieval.jsonl``: the sample suite's retrieval questions, label
texts and product words, each with its gold image) are run against the sample catalogue three
times: with its annotation titles, with every other title removed, and **untitled** (every
title removed, as the competition's query images are). Each time it ranks with the title index
alone, the image-text index alone (OCR text + colour names read off the images), those two
fused with reciprocal rank fusion, and everything fused (:func:`vlagent.index.fusion.fused_search`:
the colour and label rankings of :mod:`vlagent.index.attributes` too, as the agent searches);
it prints hit@1, R@5 and MRR of each (rich table) and can write them as JSON. No CLIP model
runs here (none ships offline).
"""

from __future__ import annotations

import json
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from vlagent.evals.metrics import rank_of
from vlagent.data.annotations import Annotation, read_annotations
from vlagent.data.images import open_source
from vlagent.fileio import atomic_write_json
from vlagent.index.fusion import FusedSearch, fused_search
from vlagent.index.text_index import TextIndex, index_image_texts
from vlagent.index.titles import TitleIndex
from vlagent.models.context import ToolContext
from vlagent.settings import Settings

QUERIES = "suites/sample/retrieval.jsonl"
SAMPLE = "suites/sample"


class RetrievalQuery(BaseModel):
    query: str
    gold: str
    group: str = ""


class RankerScore(BaseModel):
    n: int
    hit_at_1: float
    recall_at_5: float
    mrr: float
    ranks: list[int | None]
    seconds_per_query: float


def load_queries(path: str | Path | None = None) -> list[RetrievalQuery]:
    if path is None:
        text = resources.files("vlagent.evals").joinpath(QUERIES).read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    out = []
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            out.append(RetrievalQuery(query=row["query"], gold=row["gold"], group=row.get("from", "")))
    return out


def score(ranked: list[list[str]], golds: list[str], seconds: float = 0.0) -> RankerScore:
    ranks = [rank_of(r, [g]) for r, g in zip(ranked, golds)]
    n = len(ranks)
    return RankerScore(
        n=n,
        hit_at_1=sum(r == 1 for r in ranks) / n,
        recall_at_5=sum(r is not None and r <= 5 for r in ranks) / n,
        mrr=sum(1.0 / r for r in ranks if r) / n,
        ranks=ranks,
        seconds_per_query=seconds / n if n else 0.0,
    )


def evaluate(rankers: dict[str, Any], queries: list[RetrievalQuery], depth: int = 20) -> dict[str, RankerScore]:
    """``rankers``: name → ``(text, k) -> hits``; every ranker scored on every query."""
    golds = [q.gold for q in queries]
    out = {}
    for name, rank in rankers.items():
        t0 = time.perf_counter()
        ranked = [[h["image"] for h in rank(q.query, depth)] for q in queries]
        out[name] = score(ranked, golds, time.perf_counter() - t0)
    return out


MODES = {"titled": "every image has its title", "half": "every other image untitled", "untitled": "no titles"}


def sample_rankers(home: Path, mode: str) -> dict[str, Any]:
    """title / text / fused rankers over the shipped sample catalogue (see :data:`MODES`)."""

    root = Path(str(resources.files("vlagent.evals").joinpath(SAMPLE)))
    rows = read_annotations(root / "train_annotation.csv")
    if mode == "untitled":
        rows = [Annotation(image=r.image, title="") for r in rows]
    elif mode == "half":
        rows = [Annotation(image=r.image, title=r.title if n % 2 == 0 else "") for n, r in enumerate(rows)]
    settings = Settings(home=home, dataset=f"sample-{mode}")
    ctx = ToolContext.from_settings(settings, [root / "images"])
    text_index = TextIndex.open(settings)
    with open_source(root / "images") as source:
        index_image_texts(source, text_index, ctx, rows)
    rankers: dict[str, Any] = {}
    if any(r.title.strip() for r in rows):
        rankers["title"] = TitleIndex(rows).search
    rankers["text"] = text_index.search
    two = FusedSearch(dict(rankers), {r.image: r.title for r in rows})
    everything = fused_search(settings, rows, text_index=text_index, title_index=None)
    if "title" in rankers:
        rankers["title (no text index)"] = rankers.pop("title")
        rankers["fused title + text"] = two.search_text
    rankers["fused (+ colour, label)"] = everything.search_text
    return rankers


def render(results: dict[str, dict[str, RankerScore]], console: Console) -> None:
    t = Table(title="text → image retrieval on the sample catalogue")
    for col in ("catalogue", "ranking", "n", "hit@1", "R@5", "MRR", "ms/query"):
        t.add_column(col, justify="left" if col in ("catalogue", "ranking") else "right")
    for catalogue, scores in results.items():
        for name, s in scores.items():
            t.add_row(
                catalogue, name, str(s.n), f"{s.hit_at_1:.3f}", f"{s.recall_at_5:.3f}", f"{s.mrr:.3f}",
                f"{1000 * s.seconds_per_query:.0f}",
            )  # fmt: skip
    console.print(t)


app = typer.Typer(add_completion=False, help="Retrieval with and without the image-text index (sample suite).")


@app.command()
def main(
    home: Optional[Path] = typer.Option(None, help="VLAGENT_HOME for the indexes (default: a temporary folder)"),
    out: Optional[Path] = typer.Option(None, help="write the scores as JSON here"),
) -> None:
    import logging

    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    console = Console()
    queries = load_queries()
    results: dict[str, dict[str, RankerScore]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = home or Path(tmp)
        for mode in MODES:
            results[mode] = evaluate(sample_rankers(base, mode), queries)
    if not results["untitled"].get("title (no text index)"):
        n = len(queries)
        results["untitled"] = {
            "title (no text index)": RankerScore(
                n=n, hit_at_1=0, recall_at_5=0, mrr=0, ranks=[None] * n, seconds_per_query=0
            ),
            **results["untitled"],
        }
    render(results, console)
    if out:
        atomic_write_json(out, {k: {n: s.model_dump() for n, s in v.items()} for k, v in results.items()})
        console.print(f"wrote {out}")


if __name__ == "__main__":
    app()
