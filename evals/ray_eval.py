"""``vlagent eval --engine ray``: the batch harness with its questions sharded across Ray actors.

The driver plans the run exactly as the local harness does (:func:`~vlagent.evals.harness.plan_run`:
the checks, duplicates, and ``--resume`` from every journal of the run), then hands the
questions to a pool of actors (:class:`ray.util.ActorPool`: the next question goes to the next
free actor). Each actor builds its agent once, pointed at the shared model URLs of its
settings (vLLM / llama.cpp servers behind ``VLAGENT_LLM_BASE_URL`` / ``VLAGENT_VQA_BASE_URL``),
and appends every answer to its own journal shard (``answers.json.journal.shard-K.jsonl``,
fsync'ed) before returning it. The driver merges the shards in input order and writes the
output atomically (:func:`~vlagent.evals.harness.finish_run`): the summary and the report are
the local run's. A killed run resumes with ``--resume`` on either engine; nothing is asked twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlagent.distributed.common import as_user_error, ray_session
from vlagent.errors import VlagentError, one_line
from vlagent.evals.harness import EvalRun, _progress, answer_item, finish_run, plan_run
from vlagent.evals.journal import Journal, JournalEntry, shard_journal_path
from vlagent.evals.lock import OutputLock

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from vlagent.data.queries import QueryItem
    from vlagent.settings import Settings

#: seconds to wait for the actors to build their agents (model loads included)
ACTOR_START_TIMEOUT = 900.0

#: builds the agent inside an actor: ``factory(images, annotations)`` (``vlagent.cli.eval_cmd.make_agent``)
AgentFactory = Callable[[list[Path], "Path | None"], Any]


class EvalActor:
    """One agent, built once, answering one question at a time into its own journal shard."""

    def __init__(self, factory: AgentFactory, images: list[Path], annotations: Path | None, journal: str) -> None:
        self.error: str | None = None
        try:
            self.agent = factory(images, annotations)
        except Exception as exc:  # noqa: BLE001 - reported once by the driver, as one line
            self.error = one_line(exc)
        self.journal = Journal(journal)

    def ready(self) -> str | None:
        """None, or why this actor has no agent."""
        return self.error

    def answer(self, index: int, item: "QueryItem", key: str) -> JournalEntry:
        entry = answer_item(self.agent, index, item, key)
        self.journal.record(entry)
        return entry

    def close(self) -> None:
        self.journal.close()


def run_eval_ray(
    factory: AgentFactory,
    query: str | Path,
    out: str | Path,
    *,
    images: list[Path],
    annotations: Path | None,
    settings: "Settings",
    resume: bool = False,
    retry_failed: bool = False,
    retry_degraded: bool = False,
    actors: int = 2,
    address: str | None = None,
    progress: bool = True,
    console: "Console | None" = None,
    on_entry: Callable[[JournalEntry], None] | None = None,
    lock: bool = True,
) -> EvalRun:
    """Answer the questions of ``query`` on ``actors`` Ray actors; the local harness's result.

    ``lock``: hold ``OUT.lock`` for the run, as the local harness does (False when the caller holds it)."""
    if actors < 1:
        raise VlagentError(f"--workers must be at least 1, got {actors}")
    with OutputLock(out) if lock else ExitStack():
        return _run_eval_ray(
            factory, query, out, images=images, annotations=annotations, settings=settings, resume=resume,
            retry_failed=retry_failed, retry_degraded=retry_degraded, actors=actors, address=address,
            progress=progress, console=console, on_entry=on_entry,
        )  # fmt: skip


def _run_eval_ray(
    factory: AgentFactory,
    query: str | Path,
    out: str | Path,
    *,
    images: list[Path],
    annotations: Path | None,
    settings: "Settings",
    resume: bool,
    retry_failed: bool,
    retry_degraded: bool,
    actors: int,
    address: str | None,
    progress: bool,
    console: "Console | None",
    on_entry: Callable[[JournalEntry], None] | None,
) -> EvalRun:
    from rich.console import Console


    started = time.perf_counter()
    console = console or Console(stderr=True)
    out = Path(out).expanduser().resolve()
    images = [Path(p).expanduser().resolve() for p in images]
    annotations = Path(annotations).expanduser().resolve() if annotations else None
    plan = plan_run(query, out, images=list(images), resume=resume, retry_failed=retry_failed,
                    retry_degraded=retry_degraded)
    entries = plan.entries
    n_actors = max(1, min(actors, len(plan.todo)))
    summary = plan.new_summary(n_actors)
    if plan.todo:
        with ray_session(settings, address) as ray:
            from ray.util import ActorPool

            cpus = float(ray.cluster_resources().get("CPU", 1.0))
            fits = max(1, int(cpus // settings.ray_eval_actor_cpus))
            if n_actors > fits:
                console.print(f"[yellow]{n_actors} actors asked, {fits} fit the cluster's {cpus:g} CPUs "
                              f"at {settings.ray_eval_actor_cpus:g} each (VLAGENT_RAY_EVAL_ACTOR_CPUS)[/]")  # fmt: skip
                n_actors = fits
                summary.workers = fits
            remote = ray.remote(num_cpus=settings.ray_eval_actor_cpus)(EvalActor)
            pool_actors = [
                remote.remote(factory, images, annotations, str(shard_journal_path(out, k)))
                for k in range(n_actors)
            ]
            failed = 0
            bar = _progress(console) if progress else None
            try:
                try:
                    problems = [p for p in ray.get([a.ready.remote() for a in pool_actors], timeout=ACTOR_START_TIMEOUT) if p]
                except Exception as exc:
                    raise as_user_error(exc, "cannot start the eval actors on Ray") from None
                if problems:
                    raise VlagentError(f"cannot build the agent on a Ray actor: {problems[0]}")
                if bar is not None:
                    bar.start()
                    task = bar.add_task("eval", total=plan.unique, completed=summary.reused, status="")
                pool = ActorPool(pool_actors)
                results = pool.map_unordered(
                    lambda actor, i: actor.answer.remote(i, plan.valid[i], plan.keys[i]), plan.todo
                )
                for entry in results:
                    entries[entry.index] = entry
                    failed += entry.status == "failed"
                    if on_entry is not None:
                        on_entry(entry)
                    if bar is not None:
                        bar.update(task, advance=1, status=f"[red]{failed} failed" if failed else "")
            except (VlagentError, KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # an actor died (out of memory, a node lost)
                raise as_user_error(exc, "a Ray eval actor failed (finished answers are journalled; rerun with --resume)") from None
                ray.get([a.close.remote() for a in pool_actors])
            finally:
                if bar is not None:
                    bar.stop()
                for actor in pool_actors:  # free their CPUs now, also after Ctrl-C (answers are journalled)
                    ray.kill(actor)
    return finish_run(plan, entries, summary, started)
