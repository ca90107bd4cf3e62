"""The batch evaluation harness: every question of a ``query.json`` through the agent.

Output: the input list in its order with every field kept; ``related_image`` filled for
retrieval questions (the best image's file name), ``answer`` for the others. Each finished
question is appended to a journal next to the output (``answers.json.journal.jsonl``, fsync'ed)
so an interrupted run continues with ``resume=True`` and computes nothing twice; the output is
written atomically at the end. One run writes one output: a lock next to it
(``answers.json.lock``) makes a second run on the same output fail at once, naming the pid.

A question is *failed* when it raises, or when the agent's answer carries an error (every
tool the question needed failed: no evidence, so no answer). A failed item keeps its input
``answer`` (never a guess), is listed with its reason, and is retried on resume only with
``retry_failed=True``; the run goes on. An item is *degraded* when a step of it ran while its
server was down (the LLM, a VLM, Chroma: the classification fell back to the rules, the answer
to the facts or the other tools); the journal names the steps, the summary counts the items,
and ``retry_degraded=True`` redoes exactly those on resume. A redo that fails where the old
answer stood keeps the old answer. Invalid items (missing fields, empty question, an image
that is not in the catalogue or is outside it) are reported with their index and copied to the
output untouched; a duplicate item gets the answer of its first occurrence. Image names resolve
only inside ``images`` (the ``--images`` catalogue).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from pydantic import BaseModel, Field
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from vlagent.agent.types import Answer
from vlagent.data.images import ImageSource, open_source
from vlagent.data.queries import QueryFile, QueryItem, read_queries, write_queries
from vlagent.data.resolver import ImageResolver
from vlagent.errors import DataError, ImageError, one_line

from vlagent.evals.journal import (
    Journal,
    JournalEntry,
    RankedImage,
    degraded_reasons,
    item_key,
    journal_files,
    journal_path,
    load_journals,
)
from vlagent.evals.lock import OutputLock

log = logging.getLogger(__name__)


class Agent(Protocol):
    def invoke(self, question: dict[str, Any], config: dict[str, Any] | None = None) -> Answer: ...


class Problem(BaseModel):
    index: int
    message: str

    def __str__(self) -> str:
        return f"item {self.index}: {self.message}"


class EvalSummary(BaseModel):
    query: str
    out: str
    journal: str
    total: int = Field(description="items in the query file")
    answered: int = Field(0, description="items with an answer in the output")
    computed: int = Field(0, description="questions the agent answered in this run")
    reused: int = Field(0, description="answers taken from the journal (resume)")
    redone: int = Field(0, description="journalled items asked again (--retry-failed, --retry-degraded)")
    duplicates: int = Field(0, description="duplicate items given their first occurrence's answer")
    failed: list[Problem] = Field(default_factory=list)
    degraded: list[Problem] = Field(
        default_factory=list,
        description="items answered (or failed) while a server they needed was down: fallback answers; "
        "--resume --retry-degraded redoes them",
    )
    invalid: list[Problem] = Field(default_factory=list, description="skipped, copied untouched")
    warnings: list[Problem] = Field(default_factory=list, description="answered anyway")
    by_type: dict[str, int] = Field(default_factory=dict, description="answered items by the agent's type")
    tool_errors: int = 0
    tool_error_reasons: dict[str, int] = Field(
        default_factory=dict, description="the most frequent tool errors of answered items, with counts"
    )
    elapsed_s: float = 0.0
    workers: int = 1

    @property
    def questions_per_min(self) -> float:
        return 60.0 * self.computed / self.elapsed_s if self.elapsed_s > 0 else 0.0


class EvalRun(BaseModel):
    summary: EvalSummary
    entries: dict[int, JournalEntry] = Field(description="the outcome per item index (valid items)")


# --------------------------------------------------------------------------- helpers


class RateColumn(ProgressColumn):
    """Questions per minute."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed * 60:.1f} q/min" if speed else "-- q/min", style="progress.data.speed")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]eval"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=False,
    )


def image_problem(name: str, resolver: ImageResolver) -> str | None:
    """Why ``name`` cannot be read from the catalogue (not found, outside it), or None."""
    try:
        resolver.check(name)
    except ImageError as exc:
        return one_line(exc)
    return None


def check_items(queries: QueryFile, sources: list[ImageSource] | None) -> tuple[dict[int, QueryItem], list[Problem], list[Problem]]:
    """Valid items, invalid ones (skipped), warnings (answered anyway).

    ``sources``: the catalogue; an image name must resolve inside it (``None`` skips the check)."""
    invalid = [Problem(index=p.index, message=p.message) for p in queries.problems if p.fatal]
    warnings = [Problem(index=p.index, message=p.message) for p in queries.problems if not p.fatal]
    resolver = ImageResolver(list(sources)) if sources is not None else None
    valid: dict[int, QueryItem] = {}
    for index in queries.valid_indices:
        item = queries.items[index]
        if resolver is not None:
            problems = [why for why in (image_problem(name, resolver) for name in item.images) if why]
            if problems:
                invalid.append(Problem(index=index, message="; ".join(problems)))
                continue
        valid[index] = item
    invalid.sort(key=lambda p: p.index)
    return valid, invalid, warnings


def fill_for(item: QueryItem, answer: Answer) -> dict[str, str]:
    """The output fields: ``related_image`` for a retrieval question, ``answer`` otherwise."""
    if answer.type == "retrieve" and not item.images:  # the competition's retrieval question
        best = answer.images[0].image if answer.images else ""
        return {"related_image": Path(best).name if best else ""}
    return {"answer": answer.text}


def answer_item(agent: Agent, index: int, item: QueryItem, key: str) -> JournalEntry:
    """Ask the agent one question. An ``Exception``, or an answer with an error (no evidence),
    becomes a failed entry with its reason and no answer (Ctrl-C propagates)."""
    thread_id = f"eval-{key}-{index}"
    started = time.perf_counter()
    try:
        result = agent.invoke(
            {"question": item.question, "images": item.images},
            config={"configurable": {"thread_id": thread_id}},
        )
        answer = result if isinstance(result, Answer) else Answer.model_validate(result)
        failed = answer.error is not None
        tool_errors = [f"{t.name}: {t.error}" for t in answer.trace if not t.ok]
        error = answer.error.line() if answer.error is not None else None
        entry = JournalEntry(
            index=index,
            key=key,
            status="failed" if failed else "ok",
            type=answer.type,
            text="" if failed else answer.text,
            ranked=[] if failed else [RankedImage(image=r.image, score=r.score) for r in answer.images],
            fill={} if failed else fill_for(item, answer),
            classifier=answer.classifier,
            tools=[t.name for t in answer.trace],
            tool_errors=tool_errors,
            evidence=list(answer.evidence),
            error=error,
            error_kind=answer.error.kind if answer.error is not None else None,
            degraded=degraded_reasons(tool_errors, error),
        )
    except Exception as exc:  # noqa: BLE001 - one question must not stop the run
        log.debug("item %s failed", index, exc_info=True)
        entry = JournalEntry(index=index, key=key, status="failed", error=one_line(exc, 500), error_kind="exception")
    finally:
        forget = getattr(agent, "forget", None)
        if callable(forget):
            try:
                forget(thread_id)
            except Exception:  # noqa: BLE001 - best effort: memory only
                pass
    entry.duration_s = time.perf_counter() - started
    return entry


def _open_sources(images: list[str | Path] | None, stack: ExitStack) -> list[ImageSource] | None:
    if images is None:
        return None
    return [stack.enter_context(open_source(p)) for p in images]


def _fresh_journal(path: Path) -> None:
    """Without resume, an old journal is kept aside (never deleted) and a new one started."""
    if path.is_file() and path.stat().st_size > 0:
        backup = path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
        path.rename(backup)
        log.warning("moved the previous journal to %s (use --resume to continue a run)", backup)


@dataclass
class RunPlan:
    """What a run over ``query`` has to do: the valid items, the answers the journal already
    holds (resume), the items left to answer. Shared by the local and the distributed runs."""

    query: Path
    out: Path
    journal: Path
    queries: QueryFile
    valid: dict[int, QueryItem]
    invalid: list[Problem]
    warnings: list[Problem]
    keys: dict[int, str]
    duplicate_of: dict[int, int]
    entries: dict[int, JournalEntry]
    todo: list[int]
    redo: dict[int, JournalEntry]  # the journalled outcomes asked again (failed or degraded)

    @property
    def unique(self) -> int:
        """Valid items that are not duplicates of an earlier one."""
        return len(self.valid) - len(self.duplicate_of)

    def new_summary(self, workers: int) -> EvalSummary:
        return EvalSummary(
            query=str(self.query), out=str(self.out), journal=str(self.journal), total=len(self.queries.raw),
            invalid=self.invalid, warnings=self.warnings, workers=workers,
            reused=sum(e.status == "ok" for e in self.entries.values()),  # answers; kept failures count as failed
            redone=len(self.redo),
        )  # fmt: skip


def plan_run(
    query: str | Path,
    out: str | Path,
    *,
    images: list[str | Path] | None,
    resume: bool,
    retry_failed: bool = False,
    retry_degraded: bool = False,
) -> RunPlan:
    """Read and check ``query``; with ``resume`` take the outcomes in the run's journals (its
    journal and the shards of distributed runs; failed ones too unless ``retry_failed``,
    degraded ones too unless ``retry_degraded``), else set the old journals aside."""
    out = Path(out)
    queries = read_queries(query)
    jpath = journal_path(out)
    with ExitStack() as stack:
        valid, invalid, warnings = check_items(queries, _open_sources(images, stack))

    keys = {i: item_key(item) for i, item in valid.items()}
    first_of: dict[str, int] = {}
    duplicate_of: dict[int, int] = {}
    for i in sorted(valid):
        if keys[i] in first_of:
            duplicate_of[i] = first_of[keys[i]]
        else:
            first_of[keys[i]] = i

    if resume:
        previous = load_journals(journal_files(out))
    else:
        for path in journal_files(out):
            _fresh_journal(path)
        previous = {}
    entries: dict[int, JournalEntry] = {}
    redo: dict[int, JournalEntry] = {}
    todo: list[int] = []
    for i in sorted(first_of.values()):
        old = previous.get(i)
        if old is None or old.key != keys[i]:
            todo.append(i)
        elif (retry_failed and old.status == "failed") or (retry_degraded and old.degraded):
            redo[i] = old
            todo.append(i)
        else:
            entries[i] = old
    return RunPlan(
        query=Path(query), out=out, journal=jpath, queries=queries, valid=valid, invalid=invalid,
        warnings=warnings, keys=keys, duplicate_of=duplicate_of, entries=entries, todo=todo, redo=redo,
    )  # fmt: skip


def finish_run(plan: RunPlan, entries: dict[int, JournalEntry], summary: EvalSummary, started: float) -> EvalRun:
    """Keep an old answer whose redo failed, copy answers to duplicates, fill the summary,
    write the output atomically."""
    for i, old in plan.redo.items():
        new = entries.get(i)
        if old.status == "ok" and (new is None or new.status == "failed"):
            entries[i] = old  # a degraded answer beats none; still degraded, so redone next time
    for dup, orig in plan.duplicate_of.items():
        if orig in entries:
            entries[dup] = entries[orig].model_copy(update={"index": dup})
    summary.duplicates = sum(1 for d in plan.duplicate_of if d in entries)
    summary.computed = len(plan.todo)
    fills: dict[int, dict[str, str]] = {}
    types: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for i, entry in sorted(entries.items()):
        if entry.status == "ok":
            fills[i] = entry.fill
            types[entry.type or "?"] += 1
            summary.tool_errors += len(entry.tool_errors)
            reasons.update(entry.tool_errors)
        else:
            summary.failed.append(Problem(index=i, message=entry.error or "failed"))
        if entry.degraded:
            summary.degraded.append(Problem(index=i, message=entry.degraded[0]))
    summary.tool_error_reasons = dict(reasons.most_common(10))
    summary.answered = len(fills)
    summary.by_type = dict(sorted(types.items()))
    write_queries(plan.out, plan.queries.raw, fills)
    summary.elapsed_s = time.perf_counter() - started
    return EvalRun(summary=summary, entries=entries)


# --------------------------------------------------------------------------- the run


def run_eval(
    agent: Agent,
    query: str | Path,
    out: str | Path,
    *,
    images: list[str | Path] | None = None,
    resume: bool = False,
    retry_failed: bool = False,
    retry_degraded: bool = False,
    workers: int = 1,
    progress: bool = True,
    console: Console | None = None,
    on_entry: Callable[[JournalEntry], None] | None = None,
    lock: bool = True,
) -> EvalRun:
    """Answer every valid question of ``query`` and write the filled list to ``out``.

    ``images``: the catalogue (folders / zips) image names must resolve in; ``None`` skips the
    check. ``resume``: reuse the journal's answers; failed items stay failed unless
    ``retry_failed``, degraded ones (a server was down) stay as they are unless
    ``retry_degraded``. ``workers``: questions in flight at once (threads). ``lock``: hold
    ``OUT.lock`` for the run (pass False when the caller holds it). Raises ``KeyboardInterrupt``
    / ``SystemExit`` after journalling what finished; ``out`` is then left as it was.
    """
    if workers < 1:
        raise DataError(f"--workers must be at least 1, got {workers}")
    with OutputLock(out) if lock else ExitStack():
        return _run_eval(
            agent, query, out, images=images, resume=resume, retry_failed=retry_failed,
            retry_degraded=retry_degraded, workers=workers, progress=progress, console=console, on_entry=on_entry,
        )  # fmt: skip


def _run_eval(
    agent: Agent,
    query: str | Path,
    out: str | Path,
    *,
    images: list[str | Path] | None,
    resume: bool,
    retry_failed: bool,
    retry_degraded: bool,
    workers: int,
    progress: bool,
    console: Console | None,
    on_entry: Callable[[JournalEntry], None] | None,
) -> EvalRun:
    started = time.perf_counter()
    console = console or Console(stderr=True)
    out = Path(out)
    plan = plan_run(query, out, images=images, resume=resume, retry_failed=retry_failed, retry_degraded=retry_degraded)
    valid, keys, entries, todo = plan.valid, plan.keys, plan.entries, plan.todo
    summary = plan.new_summary(workers)

    prepare = getattr(agent, "prepare", None)
    if todo and callable(prepare):
        try:
            prepare([{"index": i, "question": valid[i].question, "images": valid[i].images} for i in todo])
        except Exception as exc:  # noqa: BLE001 - batching is an optimisation, not a requirement
            log.warning("agent.prepare failed (%s); answering without it", one_line(exc))

    with ExitStack() as stack:
        journal = stack.enter_context(Journal(plan.journal))
        bar = stack.enter_context(_progress(console)) if progress else None
        task = bar.add_task("eval", total=plan.unique, completed=summary.reused, status="") if bar else None
        failed = 0

        def run_one(i: int) -> JournalEntry:
            entry = answer_item(agent, i, valid[i], keys[i])
            journal.record(entry)
            return entry

        def finished(entry: JournalEntry) -> None:
            nonlocal failed
            entries[entry.index] = entry
            failed += entry.status == "failed"
            if on_entry is not None:
                on_entry(entry)
            if bar is not None and task is not None:
                bar.update(task, advance=1, status=f"[red]{failed} failed" if failed else "")

        if workers == 1 or len(todo) <= 1:
            for i in todo:
                finished(run_one(i))
        else:
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eval")
            try:
                futures = [pool.submit(run_one, i) for i in todo]
                for future in as_completed(futures):
                    finished(future.result())  # re-raises KeyboardInterrupt/SystemExit from a worker
            except BaseException:
                console.print("[yellow]stopping: finishing the questions in flight (they are journalled)...[/]")
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown(wait=True)

    return finish_run(plan, entries, summary, started)


def print_summary(summary: EvalSummary, console: Console, *, limit: int = 20) -> None:
    table = Table(title=f"eval {Path(summary.query).name} → {summary.out}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows: list[tuple[str, str]] = [
        ("items", str(summary.total)),
        ("answered", str(summary.answered)),
        ("  computed now", str(summary.computed)),
        ("  from the journal (resume)", str(summary.reused)),
        ("  duplicates (answer copied)", str(summary.duplicates)),
        ("  redone from the journal", str(summary.redone)),
        ("failed", str(len(summary.failed))),
        ("degraded (a server was down)", str(len(summary.degraded))),
        ("skipped: invalid", str(len(summary.invalid))),
        ("tool errors", str(summary.tool_errors)),
    ]
    rows += [(f"type {t}", str(n)) for t, n in summary.by_type.items()]
    rows += [
        ("time", f"{summary.elapsed_s:.1f} s"),
        ("throughput", f"{summary.questions_per_min:.1f} questions/min ({summary.workers} worker(s))"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)
    if summary.tool_error_reasons:
        console.print("[yellow]tool errors (answered from the tools that worked):[/]")
        for reason, n in summary.tool_error_reasons.items():
            console.print(f"  {n} × {reason}", highlight=False, soft_wrap=True, markup=False)
    for title, problems, style in (
        ("invalid (copied untouched)", summary.invalid, "yellow"),
        ("warnings", summary.warnings, "yellow"),
        ("failed (no answer; retried with --resume --retry-failed)", summary.failed, "red"),
        ("degraded (a server was down: fallback answers; redone with --resume --retry-degraded)", summary.degraded, "yellow"),
    ):
        if not problems:
            continue
        console.print(f"[{style}]{title}:[/]")
        for p in problems[:limit]:
            console.print(f"  item {p.index}: {p.message}", highlight=False, soft_wrap=True, markup=False)
        if len(problems) > limit:
            console.print(f"  ... and {len(problems) - limit} more (see the report)")
