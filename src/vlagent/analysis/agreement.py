"""How far two labelings of the same questions agree: adjusted Rand index and a cross-tab."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

from pydantic import BaseModel


class CrossTab(BaseModel):
    rows: str
    columns: str
    row_labels: list[str]
    column_labels: list[str]
    counts: list[list[int]]


def adjusted_rand(a: list[str], b: list[str]) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(a, b))


def pairwise_ari(labelings: dict[str, list[str]]) -> dict[str, float]:
    """``"a vs b"`` → ARI for every pair of methods."""
    return {f"{a} vs {b}": round(adjusted_rand(labelings[a], labelings[b]), 4) for a, b in combinations(labelings, 2)}


def _order(values: list[str]) -> list[str]:
    return sorted(set(values), key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))


def crosstab(rows_name: str, rows: list[str], cols_name: str, cols: list[str]) -> CrossTab:
    counts = Counter(zip(rows, cols))
    r_labels, c_labels = _order(rows), _order(cols)
    return CrossTab(
        rows=rows_name, columns=cols_name, row_labels=r_labels, column_labels=c_labels,
        counts=[[counts[(r, c)] for c in c_labels] for r in r_labels],
    )  # fmt: skip
