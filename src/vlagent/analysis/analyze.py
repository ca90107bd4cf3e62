"""Put the three methods side by side: the learned classifier, TF-IDF + KMeans clusters, the LLM's own vote."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from vlagent.agent.understand import Understander
from vlagent.analysis.agreement import CrossTab, crosstab, pairwise_ari
from vlagent.analysis.clusters import Clustering, cluster_questions
from vlagent.analysis.llm_labels import llm_labels
from vlagent.analysis.questions import Question


class Row(BaseModel):
    index: int
    question: str
    images: list[str]
    gold: str | None
    learned: str
    cluster: int
    llm: str | None = None
    llm_source: str | None = None


class LLMColumn(BaseModel):
    status: str = Field(description="'used', or why the column is missing")
    model: str | None = None
    answered: int = 0
    fell_back: int = 0
    cached: int = 0
    errors: list[str] = Field(default_factory=list, description="a few of the fall-back reasons")


class AnalysisReport(BaseModel):
    source: str
    questions: int
    counts: dict[str, dict[str, int]] = Field(description="method → label → questions")
    accuracy: dict[str, float] = Field(description="share of questions whose label equals the gold type")
    ari: dict[str, float] = Field(description="adjusted Rand index between every two labelings")
    clustering: Clustering
    crosstabs: list[CrossTab]
    llm: LLMColumn
    rows: list[Row]

    def labelings(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"learned": [r.learned for r in self.rows], "clusters": [str(r.cluster) for r in self.rows]}
        if self.llm.status == "used":
            out["llm"] = [r.llm or "" for r in self.rows]
        if all(r.gold for r in self.rows):
            out["gold"] = [r.gold or "" for r in self.rows]
        return out


def analyze_questions(
    questions: list[Question],
    source: str,
    *,
    llm: Any = None,
    llm_id: str | None = None,
    llm_skip_reason: str | None = None,
    cache_path: Path | None = None,
    k: int | None = None,
    k_max: int = 12,
    seed: int = 0,
    llm_timeout: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> AnalysisReport:
    understand = Understander()
    learned = [understand(q.question, q.images, None).classification.type for q in questions]
    clustering = cluster_questions([q.question for q in questions], k=k, k_max=k_max, seed=seed)
    llm_col = LLMColumn(status=llm_skip_reason or "not asked")
    labels = None
    if llm is not None and cache_path is not None:
        labels = llm_labels(questions, llm, llm_id or "llm", cache_path, timeout=llm_timeout, progress=progress)
        errors = list(dict.fromkeys(lab.error for lab in labels if lab.error))
        llm_col = LLMColumn(
            status="used", model=llm_id, answered=sum(lab.source == "llm" for lab in labels),
            fell_back=sum(lab.source != "llm" for lab in labels), cached=sum(lab.cached for lab in labels),
            errors=errors[:5],
        )  # fmt: skip
    rows = [
        Row(index=q.index, question=q.question, images=q.images, gold=q.gold, learned=learned[i],
            cluster=clustering.labels[i], llm=labels[i].type if labels else None,
            llm_source=labels[i].source if labels else None)  # fmt: skip
        for i, q in enumerate(questions)
    ]
    report = AnalysisReport(
        source=source, questions=len(questions), counts={}, accuracy={}, ari={},
        clustering=clustering, crosstabs=[], llm=llm_col, rows=rows,
    )  # fmt: skip
    labelings = report.labelings()
    report.counts = {name: dict(Counter(values).most_common()) for name, values in labelings.items()}
    if "gold" in labelings:
        gold = labelings["gold"]
        report.accuracy = {
            name: round(sum(a == b for a, b in zip(values, gold)) / len(gold), 4)
            for name, values in labelings.items() if name not in ("gold", "clusters")
        }  # fmt: skip
    report.ari = pairwise_ari(labelings)
    for name in ("gold", "learned", "llm"):
        if name in labelings:
            report.crosstabs.append(crosstab("clusters", labelings["clusters"], name, labelings[name]))
    if "gold" in labelings:
        for name in ("learned", "llm"):
            if name in labelings:
                report.crosstabs.append(crosstab("gold", labelings["gold"], name, labelings[name]))
    return report
