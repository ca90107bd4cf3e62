"""One harness run into a fresh folder (answers.json, report.md, report.json, plots), for the
web UI's Evaluate tab: progress through a callback, the files to download at the end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from vlagent.data.queries import read_queries
from vlagent.evals.harness import run_eval
from vlagent.evals.metrics import load_gold, score_run
from vlagent.evals.report import write_report


def run_to_folder(
    agent: Any,
    query: Path,
    images: Path,
    out_root: Path,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Path], str]:
    """Answer ``query`` over ``images`` into ``out_root/<time>/``; returns (files, report.md text)."""
    queries = read_queries(query)  # a malformed file fails here, before any question is asked
    golds = load_gold(queries, None)
    total = len(queries.valid_indices)
    out = Path(out_root) / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    done = 0

    def tick(_entry: Any) -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, total)

    if on_progress is not None:
        on_progress(0, total)
    run = run_eval(agent, query, out / "answers.json", images=[images], progress=False,
                   console=Console(quiet=True), on_entry=tick)  # fmt: skip
    metrics = score_run(run.entries, golds) if golds else None
    report = write_report(run, metrics, out)
    files = [out / "answers.json", out / "report.md", out / "report.json"] + [out / p for p in report.plots]
    return [f for f in files if f.is_file()], (out / "report.md").read_text(encoding="utf-8")
