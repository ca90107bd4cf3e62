"""The HNSW parameters of the image index come from settings (VLAGENT_HNSW_*)."""

from __future__ import annotations

import numpy as np
import pytest

from vlagent.errors import VlagentError
from vlagent.index.store import ImageIndex
from vlagent.settings import Settings


def hnsw_of(index: ImageIndex) -> dict:  # type: ignore[type-arg]
    return dict(index.collection.configuration["hnsw"])


def test_a_new_collection_is_built_with_the_settings(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("VLAGENT_HNSW_SEARCH_EF", "40")
    settings = Settings(home=tmp_path, hnsw_m=12, hnsw_construction_ef=50)
    got = hnsw_of(ImageIndex.open(settings, "m", 8))
    assert (got["space"], got["max_neighbors"], got["ef_construction"], got["ef_search"]) == ("cosine", 12, 50, 40)


def test_an_existing_collection_keeps_its_graph_and_takes_the_new_search_ef(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ImageIndex.open(Settings(home=tmp_path, hnsw_m=12, hnsw_construction_ef=100, hnsw_search_ef=40), "m", 8)
    index = ImageIndex.open(Settings(home=tmp_path, hnsw_m=48, hnsw_construction_ef=300, hnsw_search_ef=77), "m", 8)
    got = hnsw_of(index)
    assert (got["max_neighbors"], got["ef_search"]) == (12, 77)  # M is fixed at creation; ef follows
    assert (index.hnsw.m, index.hnsw.construction_ef, index.hnsw.search_ef) == (12, 100, 77)


@pytest.mark.parametrize("space", ["cosine", "ip", "l2"])
def test_scores_are_cosine_similarities_in_every_space(tmp_path, space) -> None:  # type: ignore[no-untyped-def]
    index = ImageIndex.open(Settings(home=tmp_path, hnsw_space=space), "m", 4)
    vecs = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0.6, 0.8, 0, 0]], dtype=np.float32)
    index.upsert(["a", "b", "c"], vecs, [{"file": n} for n in "abc"])
    hits = index.query(np.array([[1, 0, 0, 0]], dtype=np.float32), k=3)[0]
    assert [h.image for h in hits] == ["a", "c", "b"]
    assert [round(h.score, 4) for h in hits] == [1.0, 0.6, 0.0]


def test_a_query_asks_for_more_than_the_index_holds_or_an_empty_index(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No count() on the query path (it scans the table): fewer hits come back, empty is named."""
    index = ImageIndex.open(Settings(home=tmp_path), "m", 4)
    query = np.array([[1, 0, 0, 0]], dtype=np.float32)
    with pytest.raises(VlagentError, match="is empty: run `vlagent index` first"):
        index.query(query, k=5)
    index.upsert(["a", "b"], np.eye(4, dtype=np.float32)[:2], [{"file": n} for n in "ab"])
    assert [h.image for h in index.query(query, k=5)[0]] == ["a", "b"]
