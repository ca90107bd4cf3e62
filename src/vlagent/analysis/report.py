"""Write an :class:`AnalysisReport`: report.json, report.md and report.png (bar charts)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from vlagent.analysis.agreement import CrossTab
from vlagent.analysis.analyze import AnalysisReport
from vlagent.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text

CJK_FONTS = ["WenQuanYi Micro Hei", "Noto Sans CJK SC", "Noto Sans CJK JP", "SimHei", "DejaVu Sans"]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(esc, row)) + " |" for row in rows]
    return "\n".join(lines)


def _crosstab_md(tab: CrossTab) -> str:
    header = [f"{tab.rows} \\ {tab.columns}", *tab.column_labels]
    return _md_table(header, [[r, *map(str, row)] for r, row in zip(tab.row_labels, tab.counts)])


def markdown(report: AnalysisReport) -> str:
    c = report.clustering
    parts = [f"# Question types in {report.source}", "", f"{report.questions} questions.", ""]
    methods = list(report.counts)
    labels = sorted({label for name in methods if name != "clusters" for label in report.counts[name]})
    parts += ["## Types per method", "", _md_table(["type", *[m for m in methods if m != "clusters"]],
              [[t, *[str(report.counts[m].get(t, 0)) for m in methods if m != "clusters"]] for t in labels]), ""]  # fmt: skip
    if report.accuracy:
        parts += ["Agreement with the gold types (accuracy): " + ", ".join(f"{k} {v:.3f}" for k, v in report.accuracy.items()), ""]
    parts += [f"## Clusters (TF-IDF over jieba words + KMeans, k = {c.k} by silhouette {c.silhouette:.3f})", "",
              "silhouette per k: " + ", ".join(f"{k}: {v:.3f}" for k, v in c.silhouettes.items()), "",
              _md_table(["cluster", "size", "top terms", "examples"],
                        [[str(cl.id), str(cl.size), " ".join(cl.top_terms), " / ".join(cl.examples)] for cl in c.clusters]), ""]  # fmt: skip
    parts += ["## Agreement (adjusted Rand index)", "", _md_table(["methods", "ARI"], [[k, f"{v:.3f}"] for k, v in report.ari.items()]), ""]
    for tab in report.crosstabs:
        parts += [f"### {tab.rows} × {tab.columns}", "", _crosstab_md(tab), ""]
    llm = report.llm
    parts += ["## LLM classifier", "", f"status: {llm.status}" + (f"; model {llm.model}" if llm.model else ""), ""]
    if llm.status == "used":
        parts += [f"answered by the LLM: {llm.answered}, no vote: {llm.fell_back}, from the cache: {llm.cached}", ""]
        parts += [f"- {e}" for e in llm.errors] + [""]
    return "\n".join(parts)


def chart(report: AnalysisReport) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    plt.rcParams["font.sans-serif"] = CJK_FONTS
    plt.rcParams["axes.unicode_minus"] = False
    methods = [m for m in report.counts if m != "clusters"]
    types = sorted({t for m in methods for t in report.counts[m]})
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(types))
    for i, m in enumerate(methods):
        left.bar(x + i * width - 0.4 + width / 2, [report.counts[m].get(t, 0) for t in types], width, label=m)
    left.set_xticks(x, types, rotation=20)
    left.set_ylabel("questions")
    left.set_title("question types per method")
    left.legend()
    clusters = report.clustering.clusters
    right.barh([f"{c.id}: {' '.join(c.top_terms[:3])}" for c in clusters], [c.size for c in clusters], color="tab:gray")
    right.invert_yaxis()
    right.set_xlabel("questions")
    right.set_title(f"TF-IDF + KMeans clusters (k={report.clustering.k})")
    fig.tight_layout()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing CJK glyphs when no CJK font is installed
        fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_report(report: AnalysisReport, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    paths = {"json": out / "report.json", "md": out / "report.md", "png": out / "report.png"}
    atomic_write_json(paths["json"], report.model_dump(mode="json"))
    atomic_write_text(paths["md"], markdown(report))
    atomic_write_bytes(paths["png"], chart(report))
    return paths
