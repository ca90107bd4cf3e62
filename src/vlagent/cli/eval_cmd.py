"""``vlagent eval``: the batch harness (:mod:`vlagent.evals`) on the command line (also
``python -m vlagent.cli eval``).

Tests inject a fake agent by monkeypatching :func:`make_agent`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from vlagent.cli.errors import err_console
from vlagent.data.queries import read_queries
from vlagent.distributed.common import ADDRESS_HELP, ENGINE_HELP, Engine
from vlagent.errors import VlagentError
from vlagent.evals.harness import print_summary, run_eval
from vlagent.evals.journal import journal_path
from vlagent.evals.lock import OutputLock
from vlagent.evals.metrics import load_gold, score_run
from vlagent.evals.ray_eval import run_eval_ray
from vlagent.evals.report import SCORE_LABELS, _ordered, write_report
from vlagent.models import loader
from vlagent.settings import Settings

console = Console()


def make_agent(images: list[Path], annotations: Path | None) -> Any:
    """The agent the command evaluates (the real one; tests replace this function).

    Its images come only from the catalogue (``--images``): no extra roots from settings."""
    settings = Settings().model_copy(update={"image_roots": []})
    from vlagent.agent.build import build_agent  # lazy: start-up time of `vlagent --help` (langgraph)

    return build_agent(settings=settings, images=list(images), annotations=annotations)


def print_metrics(metrics: Any, out: Console) -> None:
    names = _ordered({k for t in metrics.by_type.values() for k in t.scores})
    def cell(name: str, scores: dict[str, float]) -> str:
        if name not in scores:
            return ""
        return f"{scores[name]:.1f}" if name == "bleu" else f"{scores[name]:.2f}"

    groups = sorted(metrics.by_type)
    # metrics as rows, types as columns: fits an 80-column terminal
    table = Table(title="scores by type (gold)", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("metric", no_wrap=True)
    for group in groups:
        table.add_column(f"{group}\n(n={metrics.by_type[group].n})", justify="right", no_wrap=True)
    table.add_column(f"all\n(n={metrics.scored})", justify="right", no_wrap=True, style="bold")
    for name in names:
        table.add_row(
            SCORE_LABELS.get(name, name),
            *[cell(name, metrics.by_type[g].scores) for g in groups],
            cell(name, metrics.overall),
        )
    out.print(table)


def auto_workers(agent: Any) -> int:
    """Questions in flight by default: enough to keep the agent's LLM engine busy (its slots
    in-process, 4 against a server, 1 without an LLM or with an agent that says nothing)."""
    llm = getattr(getattr(agent, "parts", None), "llm", None)
    settings = getattr(getattr(agent, "ctx", None), "settings", None)
    if llm is None or settings is None:
        return 1
    backend = loader.status("llm", settings).backend
    if backend == "llama-cpp":
        return int(settings.llm_parallel)
    return 4 if backend == "openai" else 1


def eval_command(
    query: Annotated[Path, typer.Argument(help="query.json: a list of {question, related_image, answer}")],
    images: Annotated[
        list[Path], typer.Option("--images", "--catalogue", "-c", help="the catalogue: image folder or image.zip the questions refer to (repeatable)")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write the filled query list (answers.json)")],
    annotations: Annotated[
        Optional[Path], typer.Option("--annotations", "-a", help="train_annotation.csv: file name + title")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue an interrupted run from OUT.journal.jsonl (nothing is asked twice)")
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="with --resume: ask the failed questions again too")
    ] = False,
    retry_degraded: Annotated[
        bool,
        typer.Option("--retry-degraded", help="with --resume: ask again the questions answered (or failed) while a server "
                     "they needed was down (the LLM, a VLM, Chroma): their answers are fallbacks"),
    ] = False,
    workers: Annotated[
        Optional[int],
        typer.Option("--workers", "-w", min=1, help="questions answered concurrently (default: the in-process LLM engine's "
                     "slots, VLAGENT_LLM_PARALLEL; 4 against an LLM server; 1 otherwise)"),
    ] = None,
    report_dir: Annotated[
        Optional[Path], typer.Option("--report-dir", help="write report.json, report.md and plots here")
    ] = None,
    gold: Annotated[
        Optional[Path],
        typer.Option("--gold", help="gold answers (gold_type/gold_image/gold_answer, or a filled query list); "
                     "default: the gold_* fields in QUERY"),
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show the progress bar")] = True,
    engine: Annotated[Engine, typer.Option("--engine", help=ENGINE_HELP + "; with ray, --workers is the number of actors")] = Engine.local,
    address: Annotated[Optional[str], typer.Option("--address", help=ADDRESS_HELP)] = None,
) -> None:
    """Answer every question in QUERY and write the competition's output format to --out.

    The output keeps the input order and fields: related_image is filled for retrieval questions, answer for the others. Each answer is journalled as it finishes, so an interrupted run continues with --resume. Invalid items (and images outside --images) are reported by index and copied untouched. A question whose tools all failed gets no answer: it is listed as failed with its reason. Exit code 1 if some questions failed (--resume --retry-failed asks them again). Questions answered while a server was down (the LLM, a VLM, Chroma) are counted as degraded in the summary; --resume --retry-degraded asks exactly those again. A second run on the same --out stops at once.
    """
    for flag, given in (("--retry-failed", retry_failed), ("--retry-degraded", retry_degraded)):
        if given and not resume:
            raise VlagentError(f"{flag} goes with --resume (a run without --resume asks everything)")
    queries = read_queries(query)  # fail fast on a malformed file, before loading any model
    golds = load_gold(queries, gold)
    with OutputLock(out):  # fail fast if another run writes the same output
        try:
            if engine == Engine.ray:
                run = run_eval_ray(make_agent, query, out, images=list(images), annotations=annotations, settings=Settings(),
                                   resume=resume, retry_failed=retry_failed, retry_degraded=retry_degraded,
                                   actors=workers or 1, address=address,
                                   progress=progress, console=err_console, lock=False)  # fmt: skip
            else:
                with err_console.status("loading the agent ..."):
                    agent = make_agent(list(images), annotations)
                workers = workers or auto_workers(agent)
                run = run_eval(agent, query, out, images=list(images), resume=resume, retry_failed=retry_failed,
                               retry_degraded=retry_degraded, workers=workers, progress=progress, console=err_console,
                               lock=False)  # fmt: skip
        except KeyboardInterrupt:
            err_console.print(
                f"[yellow]interrupted:[/] finished answers are in {journal_path(out)}; "
                f"rerun the same command with --resume to continue",
                highlight=False,
            )
            raise typer.Exit(130) from None
    print_summary(run.summary, console)
    metrics = score_run(run.entries, golds) if golds else None
    if metrics is not None and metrics.scored:
        print_metrics(metrics, console)
    if report_dir is not None:
        write_report(run, metrics, report_dir)
        console.print(f"report: {report_dir / 'report.md'}", highlight=False)
    console.print(f"answers: {out}", highlight=False)
    if run.summary.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``eval`` to the main ``vlagent`` app."""
    app.command("eval")(eval_command)

