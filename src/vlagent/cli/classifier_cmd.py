"""``vlagent classifier``: train the learned question classifier, record an LLM's votes, fit the fusion.

    vlagent classifier train                       # the shipped data → agent/weights/intent.json
    vlagent classifier votes --out runs/votes.jsonl     # the configured LLM's vote on each labelled question
    vlagent classifier fit-fusion runs/votes.jsonl      # → HOME/fusion/<llm>.json (how much that LLM counts)

The blind holdout (``suites/classifier/blind.jsonl``) is never trained on, chosen on or fit on:
``python -m vlagent.evals.classifier_eval`` reports it apart.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

import vlagent.agent as agent_pkg
from vlagent.agent.classify import llm_vote
from vlagent.agent.intent_model import WEIGHTS, EmbeddingCache, embed_questions, read_weights
from vlagent.agent.intent_train import (
    BLIND_FILE, CANDIDATES, Labelled, default_training_files, featurise, oof_proba, read_labelled, shipped_file, train,
)  # fmt: skip
from vlagent.agent.language import merge_images
from vlagent.agent.understand import Understander, llm_name
from vlagent.agent.vote import fit_fusion, load_votes, write_fusion
from vlagent.cli.errors import err_console, typer_app
from vlagent.errors import DataError
from vlagent.fileio import atomic_write_text
from vlagent.models.llm import build_chat_model
from vlagent.settings import Settings

app = typer_app(help="The learned question classifier: train it, record an LLM's votes, fit how much the LLM counts.")
console = Console()

DataOpt = Annotated[
    Optional[list[Path]], typer.Option("--data", "-d", help="labelled JSONL files (default: the shipped training files)")
]


def _shipped_weights_path() -> Path:
    return Path(agent_pkg.__file__).parent / WEIGHTS


def vote_key(question: str, images: list[str]) -> str:
    return json.dumps([question, images], ensure_ascii=False)


@app.command("train")
def train_cmd(
    data: DataOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="weights file (default: the package's agent/weights/intent.json)")] = None,
) -> None:
    """Train on labelled questions (never the blind holdout): candidates compared by 5-fold
    cross-validation, the best fit on everything; deterministic; the file records the data."""
    files = data or default_training_files()
    for f in files:
        if not f.is_file():
            raise DataError(f"{f}: no such file")
        if f.name == Path(BLIND_FILE).name:
            raise DataError(f"{f} is the blind holdout: it is never trained on")
    t0 = time.perf_counter()
    try:
        result = train(files, cache_dir=Settings().cache_dir, progress=lambda m: console.print(f"  {m}"))
    except ValueError as exc:
        raise DataError(str(exc)) from None
    target = out or _shipped_weights_path()
    atomic_write_text(target, result.weights.model_dump_json() + "\n")
    rec = result.weights.trained
    console.print(f"trained on {rec.examples} questions ({', '.join(f'{k} {v}' for k, v in rec.per_type.items())})")
    console.print(f"data: {', '.join(f'{k} sha256 {v[:12]}' for k, v in rec.data.items())}")
    console.print(f"chosen: {rec.chosen} (cross-validated accuracy {rec.cv_accuracy:.4f}); wrote {target} in {time.perf_counter() - t0:.0f} s")


@app.command("votes")
def votes_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL of votes; an existing file is resumed")],
    data: DataOpt = None,
    blind: Annotated[bool, typer.Option(help="vote on the blind holdout instead (for its report, never for a fit)")] = False,
    every: Annotated[int, typer.Option(min=1, help="every Nth question of each file (a spread-out sample: votes cost an LLM call each)")] = 1,
    below: Annotated[Optional[float], typer.Option(help="only the questions whose learned top probability is below this (the ones a fusion would ask about)")] = None,
) -> None:
    """The configured LLM's vote (a probability per type) on each labelled question, one JSON
    line each; resumable (questions already in OUT are skipped)."""
    settings = Settings()
    if settings.llm_backend == "none":
        raise DataError("no LLM configured (VLAGENT_LLM_BACKEND=none)")
    files = [shipped_file(BLIND_FILE)] if blind else (data or default_training_files())
    rows = [r for f in files for r in read_labelled(f)[::every]]
    if below is not None:
        understand = Understander(settings)
        rows = [r for r in rows if max(understand(r.question, r.images, None).classification.scores.values()) < below]
    done = load_votes(out) if out.is_file() else {}
    llm = build_chat_model(settings)
    name = llm_name(llm)
    todo = [r for r in rows if vote_key(r.question, merge_images(r.images, r.question)) not in done]
    console.print(f"{name}: {len(rows)} questions, {len(rows) - len(todo)} already voted")
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = (TextColumn("votes"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with out.open("a", encoding="utf-8") as fh, Progress(*columns, console=console) as bar:
        task = bar.add_task("votes", total=len(todo))
        for r in todo:
            imgs = merge_images(r.images, r.question)
            t0 = time.perf_counter()
            try:
                vote = llm_vote(llm, r.question, imgs, static_examples=settings.classifier_static_examples)
            except Exception as exc:  # noqa: BLE001 - a failed vote is recorded as missing
                err_console.print(f"[yellow]warning:[/] no vote for {r.question[:40]!r}: {exc}")
                bar.advance(task)
                continue
            line = {"key": vote_key(r.question, imgs), "model": name, "type": r.type, "probs": vote.probs,
                    "method": vote.method, "seconds": round(time.perf_counter() - t0, 3)}  # fmt: skip
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
            fh.flush()
            bar.advance(task)
    console.print(f"wrote {out}")


@app.command("fit-fusion")
def fit_fusion_cmd(
    votes: Annotated[Path, typer.Argument(help="the JSONL `vlagent classifier votes` wrote (one LLM's votes)")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="folder (default: HOME/fusion)")] = None,
    model: Annotated[Optional[str], typer.Option(help="the LLM's name (default: the one in the votes)")] = None,
) -> None:
    """Fit how much one LLM's vote counts beside the learned model: the pool's weights and the
    threshold below which the LLM is asked, on the learned model's out-of-fold probabilities."""
    if not votes.is_file():
        raise DataError(f"{votes}: no such file")
    recorded = load_votes(votes)
    lines = [json.loads(x) for x in votes.read_text("utf-8").splitlines() if x.strip()]
    name = model or (lines[0].get("model") if lines else None)
    if not name:
        raise DataError("the votes file is empty")
    weights = read_weights()
    cand = next((c for c in CANDIDATES if c.name == weights.trained.chosen), CANDIDATES[0])
    rows: list[Labelled] = [r for f in default_training_files() for r in read_labelled(f)]
    x = featurise(rows, EmbeddingCache(Settings().cache_dir, embed_questions))
    y = np.array([r.type for r in rows])
    labels = sorted(set(y.tolist()))
    oof = oof_proba(cand, x, [r.question.strip() for r in rows], y, labels)
    keys = [vote_key(r.question, merge_images(r.images, r.question)) for r in rows]
    have = [i for i, k in enumerate(keys) if k in recorded]
    if len(have) < 50:
        raise DataError(f"only {len(have)} of the training questions have a vote: record more with `vlagent classifier votes`")
    llm = np.array([[recorded[keys[i]].get(t, 0.0) for t in labels] for i in have])
    fusion = fit_fusion(name, labels, [rows[i].type for i in have], oof[have], llm)
    path = write_fusion(fusion, out or Settings().home / "fusion")
    f = fusion.fitted_on
    console.print(
        f"{name}: learned weight {fusion.learned_weight:g}, LLM weight {fusion.llm_weight:g}, ask the LLM below "
        f"{fusion.ask_below:g} ({float(f['share_asked']):.0%} of questions); out of fold on {f['questions']} questions: "
        f"learned {float(f['learned_accuracy']):.3f}, LLM {float(f['llm_accuracy']):.3f}, fused {float(f['fused_accuracy']):.3f}"
    )
    console.print(f"wrote {path}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="classifier")
