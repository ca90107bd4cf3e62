"""Evaluate the question classifier (rules and LLM) on the labelled suite.

    python -m vlagent.evals.classifier_eval                       # rules + the LLM from Settings
    python -m vlagent.evals.classifier_eval --llm-backend none    # rules only
    python -m vlagent.evals.classifier_eval --llm-backend llama-cpp --gguf model.gguf --out r.json
    python -m vlagent.evals.classifier_eval --llm-backend openai --base-url http://127.0.0.1:8000/v1
    python -m vlagent.evals.classifier_eval --sample 3 --examples 4 --cache runs/classify.sqlite

The LLM's prompt carries the ``--examples`` labelled questions most similar to each question
(never from the holdout split, never the question itself); ``--cache`` keeps the LLM's replies
keyed by the exact prompt, so a re-run only asks the LLM about prompts it has not seen.

Prints accuracy overall, per type and per split (``main`` was written together with the rules,
``holdout`` afterwards without looking at their output), the retrieval-query and language
accuracy and a confusion matrix (rich tables), and writes everything as JSON (``--out``).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import typer
from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

from vlagent.agent.types import ClassifierResult, QuestionType
from vlagent.agent.classify import classify
from vlagent.agent.rules import classify_rules
from vlagent.cache import DiskCache
from vlagent.models.loader import build_chat_model
from vlagent.settings import Settings



def type_names() -> list[str]:
    """The registered question types (one per card, :mod:`vlagent.agent.questions`)."""
    return [t.value for t in QuestionType]

SUITE = "suites/classifier/questions.jsonl"


class SuiteItem(BaseModel):
    question: str
    images: list[str] = Field(default_factory=list)
    type: QuestionType
    language: str
    query: str = ""
    split: str = "main"


class Prediction(BaseModel):
    question: str
    expected: str
    predicted: str
    language_ok: bool
    query_ok: bool | None = None  # retrieve items only
    query: str = ""
    source: str = "rules"
    error: str | None = None
    seconds: float = 0.0
    split: str = "main"


class TypeScore(BaseModel):
    n: int = 0
    correct: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0


class Report(BaseModel):
    name: str
    n: int
    accuracy: float
    per_type: dict[str, dict[str, float]]
    per_split: dict[str, dict[str, float]]
    language_accuracy: float
    query_accuracy: float
    confusion: dict[str, dict[str, int]]  # expected → predicted → count
    llm_answers: int = 0
    fallbacks: int = 0
    seconds_per_question: float = 0.0
    predictions: list[Prediction] = Field(default_factory=list)


def load_suite(path: str | Path | None = None) -> list[SuiteItem]:
    """The labelled questions (default: the suite shipped in ``vlagent.evals``)."""
    if path is None:
        text = resources.files("vlagent.evals").joinpath(SUITE).read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    return [SuiteItem.model_validate_json(line) for line in text.splitlines() if line.strip()]


def normalise_query(q: str) -> str:
    return re.sub(r"[\s\"'“”‘’「」《》.,，。!?？！]", "", q).lower()


def stratified(items: list[SuiteItem], per_type: int) -> list[SuiteItem]:
    """``per_type`` items of every type, evenly spaced through the suite (deterministic)."""
    out: list[SuiteItem] = []
    for t in QuestionType:
        of_type = [i for i in items if i.type is t]
        if len(of_type) <= per_type:
            out += of_type
            continue
        step = len(of_type) / per_type
        out += [of_type[int(k * step)] for k in range(per_type)]
    return out


Classifier = Callable[[str, list[str]], ClassifierResult]


def evaluate(
    name: str,
    items: list[SuiteItem],
    classifier: Classifier,
    progress: Callable[[int, Prediction], None] | None = None,
) -> Report:
    preds: list[Prediction] = []
    for i, item in enumerate(items):
        t0 = time.perf_counter()
        result = classifier(item.question, list(item.images))
        dt = time.perf_counter() - t0
        c = result.classification
        query_ok = None
        if item.type is QuestionType.retrieve:
            query_ok = c.type is QuestionType.retrieve and normalise_query(c.query) == normalise_query(item.query)
        pred = Prediction(
            question=item.question, expected=item.type.value, predicted=c.type.value,
            language_ok=c.language == item.language, query_ok=query_ok, query=c.query,
            source=result.source, error=result.error, seconds=round(dt, 3), split=item.split,
        )  # fmt: skip
        preds.append(pred)
        if progress:
            progress(i, pred)
    return summarise(name, preds)


def summarise(name: str, preds: list[Prediction]) -> Report:
    per_type = {t: TypeScore() for t in type_names()}
    per_split: dict[str, TypeScore] = {}
    confusion = {t: {u: 0 for u in type_names()} for t in type_names()}
    for p in preds:
        ok = p.expected == p.predicted
        per_type[p.expected].n += 1
        per_type[p.expected].correct += ok
        s = per_split.setdefault(p.split, TypeScore())
        s.n += 1
        s.correct += ok
        confusion[p.expected][p.predicted] += 1
    n = len(preds)
    queries = [p.query_ok for p in preds if p.query_ok is not None]
    return Report(
        name=name,
        n=n,
        accuracy=sum(p.expected == p.predicted for p in preds) / n if n else 0.0,
        per_type={t: {"n": s.n, "correct": s.correct, "accuracy": round(s.accuracy, 4)} for t, s in per_type.items()},
        per_split={k: {"n": s.n, "correct": s.correct, "accuracy": round(s.accuracy, 4)} for k, s in per_split.items()},
        language_accuracy=sum(p.language_ok for p in preds) / n if n else 0.0,
        query_accuracy=sum(bool(q) for q in queries) / len(queries) if queries else 0.0,
        confusion=confusion,
        llm_answers=sum(p.source == "llm" for p in preds),
        fallbacks=sum(p.source == "rules" for p in preds),
        seconds_per_question=sum(p.seconds for p in preds) / n if n else 0.0,
        predictions=preds,
    )


def render_versus(reports: list[Report], console: Console) -> None:
    """Accuracy per type and per split, one column per classifier (rules against the LLM)."""
    t = Table(title="accuracy: " + " vs ".join(r.name for r in reports))
    t.add_column("")
    for r in reports:
        t.add_column(r.name, justify="right")
    for name in type_names():
        t.add_row(name, *[_cell(r.per_type.get(name)) for r in reports])
    for split in sorted({k for r in reports for k in r.per_split}):
        t.add_row(f"split: {split}", *[_cell(r.per_split.get(split)) for r in reports])
    t.add_row("overall", *[f"{r.accuracy:.1%} ({r.n})" for r in reports])
    t.add_row("s/question", *[f"{r.seconds_per_question:.2f}" for r in reports])
    console.print(t)


def _cell(score: dict[str, float] | None) -> str:
    if not score or not score.get("n"):
        return "·"
    return f"{score['accuracy']:.1%} ({int(score['correct'])}/{int(score['n'])})"


def render(report: Report, console: Console) -> None:
    t = Table(title=f"{report.name}: accuracy {report.accuracy:.1%} on {report.n} questions")
    t.add_column("type")
    t.add_column("n", justify="right")
    t.add_column("correct", justify="right")
    t.add_column("accuracy", justify="right")
    for name, s in report.per_type.items():
        t.add_row(name, str(int(s["n"])), str(int(s["correct"])), f"{s['accuracy']:.1%}")
    for name, s in report.per_split.items():
        t.add_row(f"split: {name}", str(int(s["n"])), str(int(s["correct"])), f"{s['accuracy']:.1%}")
    console.print(t)
    console.print(
        f"language accuracy {report.language_accuracy:.1%} · retrieval query exact {report.query_accuracy:.1%} · "
        f"answered by llm {report.llm_answers}, by rules {report.fallbacks} · {report.seconds_per_question:.3f} s/question"
    )
    m = Table(title=f"{report.name}: confusion (rows expected, columns predicted)")
    m.add_column("")
    for name in type_names():
        m.add_column(name[:8], justify="right")
    for exp in type_names():
        row = report.confusion[exp]
        m.add_row(exp, *[(f"[bold]{row[p]}[/bold]" if p == exp else (str(row[p]) if row[p] else "·")) for p in type_names()])
    console.print(m)
    wrong = [p for p in report.predictions if p.expected != p.predicted]
    if wrong:
        w = Table(title=f"{report.name}: errors ({len(wrong)})", show_lines=False)
        w.add_column("question", overflow="fold")
        w.add_column("expected")
        w.add_column("predicted")
        w.add_column("source / error", overflow="fold")
        for p in wrong:
            w.add_row(p.question, p.expected, p.predicted, p.source + (f": {p.error}" if p.error else ""))
        console.print(w)


app = typer.Typer(add_completion=False, help="Evaluate the question classifier on the labelled suite.")


@app.command()
def main(
    suite: Optional[Path] = typer.Option(None, help="JSONL suite (default: the shipped one)"),
    llm_backend: Optional[str] = typer.Option(
        None, help="none | auto | openai | llama-cpp | transformers (default: Settings)"
    ),
    gguf: Optional[Path] = typer.Option(None, help="GGUF file for llama-cpp"),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint"),
    model: Optional[str] = typer.Option(None, help="served model name / hub id"),
    max_tokens: int = typer.Option(80, help="LLM max tokens per answer"),
    n_threads: Optional[int] = typer.Option(None, help="llama.cpp threads"),
    timeout: Optional[float] = typer.Option(None, help="seconds per LLM call before the rules decide"),
    limit: Optional[int] = typer.Option(None, help="only the first N questions"),
    sample: Optional[int] = typer.Option(None, help="N questions per type, evenly spaced (a quick, stratified run)"),
    split: Optional[str] = typer.Option(None, help="only this split (main | holdout)"),
    types: Optional[str] = typer.Option(None, help="only these types, comma-separated (e.g. ocr,compare)"),
    examples: Optional[int] = typer.Option(
        None, help="dynamic few-shot examples in the prompt (default Settings.classifier_examples; 0: none)"
    ),
    cache: Optional[Path] = typer.Option(None, help="SQLite cache of LLM replies keyed by prompt (re-runs are free)"),
    out: Optional[Path] = typer.Option(None, help="write the JSON result here"),
    log: Optional[Path] = typer.Option(None, help="append per-question progress here"),
) -> None:
    console = Console()
    items = load_suite(suite)[:limit] if limit else load_suite(suite)
    if split:
        items = [i for i in items if i.split == split]
    if types:
        wanted = {t.strip() for t in types.split(",") if t.strip()}
        unknown = wanted - set(type_names())
        if unknown:
            raise typer.BadParameter(f"unknown type(s) {', '.join(sorted(unknown))}; known: {', '.join(type_names())}")
        items = [i for i in items if i.type.value in wanted]
    if sample:
        items = stratified(items, sample)
    reports = [
        evaluate(
            "rules",
            items,
            lambda q, imgs: ClassifierResult(classification=classify_rules(q, imgs), source="rules"),
        )
    ]
    render(reports[0], console)

    llm = _build_llm(llm_backend, gguf, base_url, model, max_tokens, n_threads)
    if llm is not None:
        log_file = open(log, "a", encoding="utf-8") if log else None  # noqa: SIM115

        def progress(i: int, p: Prediction) -> None:
            line = (
                f"{i + 1}/{len(items)} {p.seconds:.1f}s {p.expected}->{p.predicted} "
                f"{'ok' if p.expected == p.predicted else 'WRONG'} [{p.source}] {p.question[:60]}"
            )
            if log_file:
                log_file.write(line + "\n")
                log_file.flush()
            else:
                print(line, file=sys.stderr, flush=True)


        reply_cache = DiskCache(cache) if cache else None
        name = f"llm ({type(llm).__name__})"
        reports.append(
            evaluate(
                name,
                items,
                lambda q, imgs: classify(q, imgs, llm, timeout=timeout, k=examples, reply_cache=reply_cache),
                progress,
            )
        )
        render(reports[-1], console)
        render_versus(reports, console)
        if log_file:
            log_file.close()
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps({r.name: r.model_dump(mode="json") for r in reports}, ensure_ascii=False, indent=1), "utf-8"
        )
        console.print(f"wrote {out}")


def _build_llm(
    backend: str | None,
    gguf: Path | None,
    base_url: str | None,
    model: str | None,
    max_tokens: int,
    n_threads: int | None,
) -> Any:
    overrides: dict[str, Any] = {"llm_max_tokens": max_tokens}
    if backend:
        overrides["llm_backend"] = backend
    if gguf:
        overrides["llm_gguf"] = gguf
    if base_url:
        overrides["llm_base_url"] = base_url
    if model:
        overrides["llm_model"] = model
    if n_threads:
        overrides["llm_n_threads"] = n_threads
    settings = Settings(**overrides)
    if settings.llm_backend == "none":
        return None

    return build_chat_model(settings)


if __name__ == "__main__":
    app()
