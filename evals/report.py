"""The run report: report.json, report.md and plots (matplotlib, Agg) in one folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from vlagent.fileio import atomic_write_json, atomic_write_text

from vlagent.evals.harness import EvalRun, EvalSummary
from vlagent.evals.metrics import Metrics

SCORE_ORDER = ["type_correct", "hit@1", "recall@5", "recall@10", "mrr", "exact_match", "contains", "rougeL", "bleu"]
SCORE_LABELS = {
    "type_correct": "type acc.", "hit@1": "hit@1", "recall@5": "R@5", "recall@10": "R@10",
    "mrr": "MRR", "exact_match": "EM", "contains": "contains", "rougeL": "ROUGE-L", "bleu": "BLEU-4",
}  # fmt: skip


class Report(BaseModel):
    created: str = Field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    summary: EvalSummary
    questions_per_min: float
    metrics: Metrics | None = None
    items: list[dict[str, Any]] = Field(default_factory=list, description="one row per answered item")
    plots: list[str] = Field(default_factory=list)
    notes: dict[str, str] = Field(default_factory=dict)


def _ordered(names: set[str] | list[str]) -> list[str]:
    return [n for n in SCORE_ORDER if n in names] + sorted(set(names) - set(SCORE_ORDER))


def _fmt(name: str, value: float) -> str:
    return f"{value:.2f}" if name == "bleu" else f"{value:.3f}"


def _plot_confusion(metrics: Metrics, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ConfusionMatrixDisplay(np.array(metrics.confusion), display_labels=metrics.confusion_labels).plot(
        ax=ax, cmap="Blues", colorbar=False
    )
    ax.set_xlabel("predicted type")
    ax.set_ylabel("gold type")
    ax.set_title(f"question types (accuracy {metrics.classification_accuracy or 0:.2f})")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_scores(metrics: Metrics, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted(metrics.by_type)
    names = _ordered({k for t in metrics.by_type.values() for k in t.scores})
    fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 3.6), squeeze=False, sharey=True)
    for ax, group in zip(axes[0], groups):
        scores = metrics.by_type[group].scores
        shown = [n for n in names if n in scores]
        values = [scores[n] / 100 if n == "bleu" else scores[n] for n in shown]
        bars = ax.bar([SCORE_LABELS.get(n, n) for n in shown], values, color="tab:blue")
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7)
        ax.set_ylim(0, 1.1)
        ax.set_title(f"{group} (n={metrics.by_type[group].n})")
        plt.setp(ax.get_xticklabels(), rotation=45, ha="right", fontsize=8)
    axes[0][0].set_ylabel("score (BLEU-4 / 100)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _markdown(report: Report) -> str:
    s = report.summary
    lines = [
        f"# Evaluation of `{Path(s.query).name}`",
        "",
        f"{report.created} · output `{s.out}` · journal `{s.journal}`",
        "",
        "## Run",
        "",
        "| | |",
        "|---|---:|",
        f"| items | {s.total} |",
        f"| answered | {s.answered} |",
        f"| computed in this run | {s.computed} |",
        f"| from the journal (resume) | {s.reused} |",
        f"| duplicates (answer copied) | {s.duplicates} |",
        f"| redone from the journal | {s.redone} |",
        f"| failed | {len(s.failed)} |",
        f"| degraded (a server was down) | {len(s.degraded)} |",
        f"| skipped: invalid | {len(s.invalid)} |",
        f"| tool errors | {s.tool_errors} |",
        f"| time | {s.elapsed_s:.1f} s |",
        f"| throughput | {report.questions_per_min:.1f} questions/min, {s.workers} worker(s) |",
        "",
        "Answered by the agent's type: "
        + (", ".join(f"{t} {n}" for t, n in s.by_type.items()) or "none"),
        "",
    ]
    m = report.metrics
    if m is not None and m.scored:
        names = _ordered({k for t in m.by_type.values() for k in t.scores})
        lines += ["## Scores by type", ""]
        lines.append("| type | n | " + " | ".join(SCORE_LABELS.get(n, n) for n in names) + " |")
        lines.append("|---|---:|" + "---:|" * len(names))
        for group in sorted(m.by_type):
            ts = m.by_type[group]
            cells = [_fmt(n, ts.scores[n]) if n in ts.scores else "" for n in names]
            lines.append(f"| {group} | {ts.n} | " + " | ".join(cells) + " |")
        cells = [_fmt(n, m.overall[n]) if n in m.overall else "" for n in names]
        lines.append(f"| **all** | {m.scored} | " + " | ".join(cells) + " |")
        lines += [""]
        if m.by_split:  # items with a gold_split (e.g. tune / holdout), scored apart too
            lines += ["## Scores by split", ""]
            lines.append("| split | type | n | " + " | ".join(SCORE_LABELS.get(n, n) for n in names) + " |")
            lines.append("|---|---|---:|" + "---:|" * len(names))
            for split in sorted(m.by_split):
                for group in sorted(m.by_split[split]):
                    ts = m.by_split[split][group]
                    cells = [_fmt(n, ts.scores[n]) if n in ts.scores else "" for n in names]
                    lines.append(f"| {split} | {group} | {ts.n} | " + " | ".join(cells) + " |")
            lines += [""]
        for note in report.notes.values():
            lines += [f"- {note}"]
        lines += [""]
        if m.confusion:
            lines += [
                f"## Question types: accuracy {m.classification_accuracy:.3f}",
                "",
                "Rows: gold type, columns: predicted type.",
                "",
                "| gold \\ predicted | " + " | ".join(m.confusion_labels) + " |",
                "|---|" + "---:|" * len(m.confusion_labels),
            ]
            for label, row in zip(m.confusion_labels, m.confusion):
                if sum(row):
                    lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
            lines += [""]
    elif m is not None:
        lines += ["No gold answers for the answered items: nothing scored.", ""]
    for plot in report.plots:
        lines += [f"![{plot}]({plot})", ""]
    if s.tool_error_reasons:
        lines += ["## Tool errors (answered from the tools that worked)", ""]
        lines += [f"- {n} × {reason}" for reason, n in s.tool_error_reasons.items()] + [""]
    for title, problems in (
        ("Invalid items (copied to the output untouched)", s.invalid),
        ("Failed questions (no answer given; retried with --resume --retry-failed)", s.failed),
        ("Degraded answers (a server was down: the rules, the facts or the other tools answered; "
         "redone with --resume --retry-degraded)", s.degraded),
        ("Warnings (answered anyway)", s.warnings),
    ):
        if problems:
            lines += [f"## {title}", ""] + [f"- item {p.index}: {p.message}" for p in problems] + [""]
    return "\n".join(lines)


def write_report(run: EvalRun, metrics: Metrics | None, report_dir: str | Path) -> Report:
    """Write report.json, report.md and the plots; returns the report."""
    folder = Path(report_dir)
    folder.mkdir(parents=True, exist_ok=True)
    scored = {r.index: r for r in (metrics.items if metrics else [])}
    items = []
    for i, entry in sorted(run.entries.items()):
        row: dict[str, Any] = {
            "index": i, "status": entry.status, "type": entry.type, "answer": entry.text,
            "ranked": entry.ranked_ids[:10], "tools": entry.tools, "duration_s": round(entry.duration_s, 3),
        }  # fmt: skip
        if entry.evidence:
            row["evidence"] = entry.evidence
        if entry.error:
            row["error"] = entry.error
            row["error_kind"] = entry.error_kind
        if entry.tool_errors:
            row["tool_errors"] = entry.tool_errors
        if entry.degraded:
            row["degraded"] = entry.degraded
        if i in scored:
            row["gold_type"] = scored[i].gold_type
            row["scores"] = scored[i].scores
        items.append(row)
    report = Report(
        summary=run.summary, questions_per_min=run.summary.questions_per_min, metrics=metrics, items=items
    )
    if metrics is not None and metrics.scored:
        report.notes = {
            "bleu": "BLEU-4: sacrebleu on jieba tokens (tokenize='none'), corpus BLEU per type, 0-100.",
            "rouge": "ROUGE-L: rouge-score F1 on jieba tokens, best reference, mean per type.",
            "short": "EM / contains: normalised (NFKC, lower case, no punctuation/space), any gold answer.",
            "retrieval": "hit@1, R@5, R@10, MRR from the ranked images; failed questions count as misses.",
        }
        _plot_scores(metrics, folder / "scores_by_type.png")
        report.plots.append("scores_by_type.png")
        if metrics.confusion:
            _plot_confusion(metrics, folder / "confusion_matrix.png")
            report.plots.append("confusion_matrix.png")
    atomic_write_json(folder / "report.json", report.model_dump(mode="json"))
    atomic_write_text(folder / "report.md", _markdown(report))
    return report
