"""Evaluate the question classifier: the learned model alone, with the LLM's vote, the LLM alone.

    python -m vlagent.evals.classifier_eval                                   # learned alone (no LLM)
    python -m vlagent.evals.classifier_eval --votes runs/votes.jsonl --blind-votes runs/votes-blind.jsonl
    VLAGENT_PROFILE=offline python -m vlagent.evals.classifier_eval --llm     # the configured LLM, live

Two sets, reported apart: the **whole suite** (the training files: the learned model was fit on
them, so its figure there is in-sample; the cross-validated figure from training is printed
beside it) and the **blind holdout** (``suites/classifier/blind.jsonl``, written apart and never
trained, chosen or fit on). For each: accuracy overall and per type, seconds per question,
language and query accuracy; the confusion matrix and the errors of the whole suite (the blind
set's errors only with ``--show-blind-errors``: reading them is how a holdout stops being blind).

With the LLM: the fused decision (the learned model and the LLM's vote pooled with the fusion
fit for that LLM, the LLM asked only where the learned model is unsure) and the LLM's own vote.
``--votes`` reads votes recorded by ``vlagent classifier votes`` instead of asking the LLM (the
same decisions, without the minutes).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Optional

import typer
from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

from vlagent.agent.intent_model import read_weights
from vlagent.agent.intent_train import BLIND_FILE, TRAINING_FILES
from vlagent.agent.language import merge_images
from vlagent.agent.cards import ORDER
from vlagent.agent.types import ClassifierResult, QuestionType
from vlagent.agent.understand import Understander, llm_name
from vlagent.agent.vote import Fusion, find_fusion, load_votes, pool
from vlagent.cache import DiskCache
from vlagent.models.llm import build_chat_model
from vlagent.settings import Settings


def type_names() -> list[str]:
    """The built-in question types, in the cards' order (:mod:`vlagent.agent.cards`)."""
    return list(ORDER)



class SuiteItem(BaseModel):
    question: str
    images: list[str] = Field(default_factory=list)
    type: QuestionType
    language: str
    query: str = ""
    split: str = ""


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
    """Labelled questions: one file, or (default) the whole shipped suite, each item's ``split``
    the file it came from (``questions``, ``train_more``, ...)."""
    if path is not None:
        return _read(Path(path).read_text("utf-8"), Path(path).stem)
    return [item for name in TRAINING_FILES for item in load_shipped(name)]


def load_shipped(name: str) -> list[SuiteItem]:
    return _read(resources.files("vlagent.evals").joinpath(name).read_text("utf-8"), Path(name).stem)


def load_blind() -> list[SuiteItem]:
    return load_shipped(BLIND_FILE)


def _read(text: str, split: str) -> list[SuiteItem]:
    items = [SuiteItem.model_validate_json(line) for line in text.splitlines() if line.strip()]
    return [i.model_copy(update={"split": split}) for i in items]


def normalise_query(q: str) -> str:
    return re.sub(r"[\s\"'“”‘’「」《》.,，。!?？！]", "", q).lower()


def stratified(items: list[SuiteItem], per_type: int) -> list[SuiteItem]:
    """``per_type`` items of every type, evenly spaced through the suite (deterministic)."""
    out: list[SuiteItem] = []
    for t in ORDER:
        of_type = [i for i in items if i.type == t]
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
        if item.query:  # a copied title or description to extract (retrieve, match)
            query_ok = c.type is item.type and normalise_query(c.query) == normalise_query(item.query)
        pred = Prediction(
            question=item.question, expected=item.type, predicted=c.type,
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
        llm_answers=sum(p.source in ("llm", "fused") for p in preds),
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


def render(report: Report, console: Console, errors: bool = True) -> None:
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
        f"language accuracy {report.language_accuracy:.1%} · query exact (retrieve, match) {report.query_accuracy:.1%} · "
        f"the LLM voted on {report.llm_answers} · {report.seconds_per_question:.3f} s/question"
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
    if wrong and errors:
        w = Table(title=f"{report.name}: errors ({len(wrong)})", show_lines=False)
        w.add_column("question", overflow="fold")
        w.add_column("expected")
        w.add_column("predicted")
        w.add_column("source / error", overflow="fold")
        for p in wrong:
            w.add_row(p.question, p.expected, p.predicted, p.source + (f": {p.error}" if p.error else ""))
        console.print(w)



Classify = Callable[[str, list[str]], ClassifierResult]


def recorded(understand: Understander, votes: dict[str, dict[str, float]], fusion: Fusion | None, alone: bool = False) -> Classify:
    """The fused decision (or, ``alone``, the LLM's own) from recorded votes, as the live path decides it."""

    def run(question: str, images: list[str]) -> ClassifierResult:
        imgs = merge_images(images, question)
        base = understand(question, imgs, None)
        vote = votes.get(json.dumps([question, imgs], ensure_ascii=False))
        if vote is None:
            return base.model_copy(update={"error": "no recorded vote"})
        if alone:
            probs, source = vote, "llm"
        else:
            learned = base.classification.scores
            if fusion is None or fusion.llm_weight <= 0 or max(learned.values()) >= fusion.ask_below:
                return base
            probs, source = pool(learned, vote, fusion), "fused"
        best = max(probs, key=lambda t: probs[t])
        c = base.classification.model_copy(update={"type": best})
        return ClassifierResult(classification=c, source=source)  # type: ignore[arg-type]

    return run


app = typer.Typer(add_completion=False, help="Evaluate the question classifier: whole suite and blind holdout, apart.")


@app.command()
def main(
    suite: Optional[Path] = typer.Option(None, help="one JSONL file instead of the shipped suite"),
    llm: bool = typer.Option(False, "--llm", help="ask the configured LLM (Settings) live"),
    votes: Optional[Path] = typer.Option(None, help="recorded votes on the suite (vlagent classifier votes)"),
    blind_votes: Optional[Path] = typer.Option(None, help="recorded votes on the blind holdout (--blind)"),
    model: Optional[str] = typer.Option(None, help="the LLM the recorded votes are from (default: named in them)"),
    blind: bool = typer.Option(True, help="report the blind holdout too"),
    show_blind_errors: bool = typer.Option(False, help="list the blind holdout's errors (it stops being blind to you)"),
    cache: Optional[Path] = typer.Option(None, help="SQLite cache of the LLM's votes keyed by prompt (--llm)"),
    out: Optional[Path] = typer.Option(None, help="write the JSON result here"),
) -> None:
    console = Console()
    sets = {"whole suite": load_suite(suite)}
    if blind and suite is None:
        sets["blind holdout"] = load_blind()
    settings = Settings()
    understand = Understander(settings)
    runs: dict[str, Classify] = {"learned": lambda q, imgs: understand(q, imgs, None)}
    recorded_votes = {"whole suite": votes, "blind holdout": blind_votes}
    if llm:
        chat = build_chat_model(settings)
        live = Understander(settings, reply_cache=DiskCache(cache) if cache else None)
        runs[f"learned + {llm_name(chat)} (live)"] = lambda q, imgs: live(q, imgs, chat)
    weights = read_weights()
    console.print(
        f"learned model: {weights.trained.chosen}, {weights.trained.examples} training questions, "
        f"cross-validated accuracy {weights.trained.cv_accuracy:.1%}"
    )
    reports: dict[str, dict[str, Report]] = {}
    for set_name, items in sets.items():
        per_set = dict(runs)
        recorded_by: dict[str, dict[str, float]] = {}
        path = recorded_votes.get(set_name)
        if path is not None and path.is_file():
            lines = [json.loads(x) for x in path.read_text("utf-8").splitlines() if x.strip()]
            name = model or (lines[0].get("model") if lines else "llm")
            fusion = find_fusion(str(name), settings.home)
            recorded_by = load_votes(path)
            console.print(f"{set_name}: {len(recorded_by)} recorded votes of {name}")
            per_set[f"learned + {name} (fused)"] = recorded(understand, recorded_by, fusion)
            per_set[f"{name} alone"] = recorded(understand, recorded_by, fusion, alone=True)
            if fusion is None:
                console.print(f"[yellow]no fusion fit for {name}: the fused column is the learned model alone[/]")
        voted = {k for k in (recorded_by if path is not None and path.is_file() else {})}
        for run_name, classify in per_set.items():
            subset = items
            if run_name.endswith(("(fused)", "alone")):  # the questions the LLM voted on (a --every sample)
                subset = [i for i in items if json.dumps([i.question, merge_images(list(i.images), i.question)], ensure_ascii=False) in voted]
            report = evaluate(f"{run_name} · {set_name}", subset, classify)
            reports.setdefault(set_name, {})[run_name] = report
            render(report, console, errors=set_name != "blind holdout" or show_blind_errors)
    table = Table(title="accuracy per type: whole suite | blind holdout")
    table.add_column("")
    columns = [(s, r) for s in reports for r in reports[s]]
    for s, r in columns:
        table.add_column(f"{r}\n{s}", justify="right")
    for t in type_names():
        table.add_row(t, *[_cell(reports[s][r].per_type.get(t)) for s, r in columns])
    table.add_row("overall", *[f"{reports[s][r].accuracy:.1%} ({reports[s][r].n})" for s, r in columns])
    table.add_row("s/question", *[f"{reports[s][r].seconds_per_question:.3f}" for s, r in columns])
    console.print(table)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        data = {s: {r: rep.model_dump(mode="json") for r, rep in by.items()} for s, by in reports.items()}
        if "blind holdout" in data and not show_blind_errors:
            for rep in data["blind holdout"].values():
                rep["predictions"] = []  # the blind set's answers stay unread
        out.write_text(json.dumps(data, ensure_ascii=False, indent=1), "utf-8")
        console.print(f"wrote {out}")


if __name__ == "__main__":
    app()
