"""Two voters, one decision: the learned classifier's probabilities and the LLM's, pooled with
weights fit on labelled data for that LLM.

``p(type) ∝ p_learned(type) ** a × p_llm(type) ** b`` (a log-linear pool). ``a`` and ``b`` are
fit per LLM (:func:`fit_fusion`) on out-of-fold probabilities of the learned model and the LLM's
votes on the training questions, by log-likelihood; so is ``ask_below``: the LLM is asked only
when the learned model's top probability is below it, the lowest threshold that loses no
cross-validated accuracy (a question the learned model is sure of costs no LLM call). A weak LLM
earns a small ``b``, a strong one behind vLLM a large one: the fit decides, never a hand.

A fit is one JSON file (:class:`Fusion`), found by the LLM's name (``agent/weights/fusion/``
shipped, ``HOME/fusion/`` for the ones a user fits with ``vlagent classifier fit-fusion``). With
no fit for the LLM in use, the learned model decides alone.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from vlagent.fileio import atomic_write_text

log = logging.getLogger(__name__)

SHIPPED = "weights/fusion"
#: the weights tried for each voter (the fit picks the pair)
GRID = tuple(round(x, 2) for x in np.arange(0.0, 2.01, 0.1))


class Fusion(BaseModel):
    """How much the LLM's vote counts beside the learned model's, for one LLM."""

    model: str = Field(description="the LLM it was fit for (its served name or GGUF file)")
    learned_weight: float = 1.0
    llm_weight: float = 0.0
    ask_below: float = Field(1.0, description="ask the LLM only when the learned model's top probability is below this")
    fitted_on: dict[str, float | int | str] = Field(default_factory=dict, description="data size, accuracies (out of fold)")


def model_slug(name: str) -> str:
    """A file name for an LLM's name: ``Qwen/Qwen2.5-1.5B-Instruct`` → ``qwen-qwen2.5-1.5b-instruct``."""
    return re.sub(r"[^a-z0-9._-]+", "-", Path(name).name.lower() if "/" not in name else name.lower()).strip("-") or "llm"


def find_fusion(model: str, home: Path | None = None) -> Fusion | None:
    """The fit for ``model``: the user's (``HOME/fusion/<slug>.json``) first, then the shipped one."""
    slug = model_slug(model)
    if home is not None:
        own = home / "fusion" / f"{slug}.json"
        if own.is_file():
            return Fusion.model_validate_json(own.read_text("utf-8"))
    shipped = resources.files("vlagent.agent").joinpath(f"{SHIPPED}/{slug}.json")
    if shipped.is_file():
        return Fusion.model_validate_json(shipped.read_text("utf-8"))
    return None


def write_fusion(fusion: Fusion, folder: Path) -> Path:
    path = folder / f"{model_slug(fusion.model)}.json"
    atomic_write_text(path, fusion.model_dump_json(indent=2) + "\n")
    return path


def pool(learned: dict[str, float], llm: dict[str, float] | None, fusion: Fusion | None) -> dict[str, float]:
    """The pooled distribution over the learned model's labels (the LLM's vote where given)."""
    labels = list(learned)
    p = np.array([learned[t] for t in labels], dtype=np.float64)
    if llm is None or fusion is None:
        return dict(zip(labels, p.tolist()))
    q = np.array([llm.get(t, 0.0) for t in labels], dtype=np.float64)
    z = fusion.learned_weight * np.log(np.clip(p, 1e-9, 1.0)) + fusion.llm_weight * np.log(np.clip(q, 1e-9, 1.0))
    e = np.exp(z - z.max())
    return dict(zip(labels, (e / e.sum()).tolist()))


def _pooled(p: np.ndarray, q: np.ndarray, a: float, b: float) -> np.ndarray:
    z = a * np.log(np.clip(p, 1e-9, 1.0)) + b * np.log(np.clip(q, 1e-9, 1.0))
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_fusion(model: str, labels: Sequence[str], y: Sequence[str], learned: np.ndarray, llm: np.ndarray) -> Fusion:
    """The weights and threshold for ``model`` from out-of-fold learned probabilities and the
    LLM's votes (rows in ``labels`` order) on labelled questions ``y``."""
    truth = np.array([list(labels).index(t) for t in y])
    rows = np.arange(len(truth))
    best: tuple[float, float, float, float] | None = None  # (log-likelihood, accuracy, a, b)
    for a in GRID:
        for b in GRID:
            if a == 0 and b == 0:
                continue
            p = _pooled(learned, llm, a, b)
            ll = float(np.log(np.clip(p[rows, truth], 1e-12, 1.0)).mean())
            acc = float((p.argmax(axis=1) == truth).mean())
            if best is None or (ll, acc) > (best[0], best[1]):
                best = (ll, acc, a, b)
    assert best is not None
    _, fused_acc, a, b = best
    fused = _pooled(learned, llm, a, b).argmax(axis=1) == truth
    alone = learned.argmax(axis=1) == truth
    top = learned.max(axis=1)
    ask_below = 1.0
    for t in sorted({round(float(x), 3) for x in top} | {1.0}):  # the lowest threshold that loses nothing
        acc = float(np.where(top < t, fused, alone).mean())
        if acc >= fused_acc:
            ask_below = t
            break
    asked = float((top < ask_below).mean())
    return Fusion(
        model=model, learned_weight=a, llm_weight=b, ask_below=ask_below,
        fitted_on={
            "questions": int(len(truth)), "learned_accuracy": round(float(alone.mean()), 4),
            "llm_accuracy": round(float((llm.argmax(axis=1) == truth).mean()), 4),
            "fused_accuracy": round(fused_acc, 4), "share_asked": round(asked, 4),
        },
    )  # fmt: skip


def load_votes(path: Path) -> dict[str, dict[str, float]]:
    """Recorded LLM votes (``vlagent classifier votes``): question key → probabilities."""
    out: dict[str, dict[str, float]] = {}
    for line in path.read_text("utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out[row["key"]] = row["probs"]
    return out


__all__ = ["Fusion", "find_fusion", "fit_fusion", "load_votes", "model_slug", "pool", "write_fusion"]
