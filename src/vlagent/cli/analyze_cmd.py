"""``vlagent analyze QUERY_JSON``: question types by the learned classifier, TF-IDF + KMeans and the LLM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from vlagent.cli.options import JsonOpt, VerboseOpt
from vlagent.cli.quiet import quiet_libraries
from vlagent.errors import one_line
from vlagent.analysis.analyze import analyze_questions
from vlagent.analysis.questions import load_questions
from vlagent.analysis.report import write_report
from vlagent.cli.errors import err_console
from vlagent.models.llm import resolve_backend
from vlagent.models.llm import build_chat_model
from vlagent.settings import Settings

console = Console()


def _llm(settings: Any) -> tuple[Any, str | None, str | None]:
    """(chat model, its id for the cache, why there is none)."""

    if settings.llm_backend == "none":
        return None, None, "skipped: no LLM configured (VLAGENT_LLM_BACKEND=none)"
    try:
        backend = resolve_backend(settings)
        llm = build_chat_model(settings)
    except Exception as exc:  # noqa: BLE001 - any load problem becomes the column's status
        return None, None, f"skipped: {one_line(exc)}"
    model = str(settings.resolved_gguf) if backend == "llama-cpp" else settings.llm_model
    where = f"@{settings.llm_base_url}" if backend == "openai" else ""
    return llm, f"{backend}:{model}{where}", None


def analyze(
    query_json: Annotated[Path, typer.Argument(help="query.json (gold types from gold_type) or a JSONL of labelled questions")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="report folder (default: QUERY_JSON's folder/analysis)")] = None,
    k: Annotated[Optional[int], typer.Option("-k", min=2, help="number of clusters (default: chosen by silhouette)")] = None,
    k_max: Annotated[int, typer.Option("--k-max", min=2, help="largest k tried when -k is not given")] = 12,
    llm: Annotated[bool, typer.Option("--llm/--no-llm", help="add the LLM classifier's column (cached, resumable)")] = True,
    llm_timeout: Annotated[Optional[float], typer.Option("--llm-timeout", help="seconds the LLM may take per question")] = None,
    seed: Annotated[int, typer.Option(help="KMeans seed")] = 0,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Which kinds of questions a query file holds: the learned classifier, TF-IDF/jieba + KMeans, the LLM.

    Writes report.json, report.md and report.png (bar charts) with the agreement between the
    methods (adjusted Rand index, cross-tabs)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


    quiet_libraries(verbose)
    questions = load_questions(query_json)
    out_dir = out or query_json.parent / "analysis"
    chat, llm_id, skip = _llm(Settings()) if llm else (None, None, "skipped: --no-llm")
    columns = (TextColumn("[bold]LLM classifier"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, disable=chat is None or as_json) as bar:
        task = bar.add_task("llm", total=len(questions))
        report = analyze_questions(
            questions, str(query_json), llm=chat, llm_id=llm_id, llm_skip_reason=skip,
            cache_path=out_dir / "llm_labels.jsonl", k=k, k_max=k_max, seed=seed,
            llm_timeout=llm_timeout, progress=lambda n: bar.advance(task, n),
        )  # fmt: skip
    paths = write_report(report, out_dir)
    if as_json:
        console.print_json(data=report.model_dump(mode="json", exclude={"rows"}))
        return
    methods = [m for m in report.counts if m != "clusters"]
    types = sorted({t for m in methods for t in report.counts[m]})
    table = Table(title=f"{report.questions} questions in {query_json.name}")
    table.add_column("type")
    for m in methods:
        table.add_column(m, justify="right")
    for t in types:
        table.add_row(t, *[str(report.counts[m].get(t, 0)) for m in methods])
    if report.accuracy:
        table.add_row("[dim]= gold[/]", *[f"[dim]{report.accuracy[m]:.0%}[/]" if m in report.accuracy else "" for m in methods])
    console.print(table)
    c = report.clustering
    ctable = Table(title=f"TF-IDF + KMeans: k={c.k} (silhouette {c.silhouette:.3f})")
    for col in ("cluster", "size", "top terms", "example"):
        ctable.add_column(col, justify="right" if col in ("cluster", "size") else "left")
    for cl in c.clusters:
        ctable.add_row(str(cl.id), str(cl.size), " ".join(cl.top_terms[:6]), cl.examples[0] if cl.examples else "")
    console.print(ctable)
    console.print("ARI: " + ", ".join(f"{k} {v:.3f}" for k, v in report.ari.items()))
    console.print(f"LLM column: {report.llm.status}" + (
        f" ({report.llm.answered} by the LLM, {report.llm.fell_back} without a vote, {report.llm.cached} cached)"
        if report.llm.status == "used" else ""))  # fmt: skip
    console.print("wrote " + ", ".join(str(p) for p in paths.values()))


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze)
