"""The image-text index (OCR text + colours as e5 passages in a second Chroma collection), the
reciprocal rank fusion of the rankings, and the text side of ``vlagent index``."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fixtures_vision import label_catalogue
from vlagent.data.annotations import Annotation, read_annotations
from vlagent.data.images import open_source
from vlagent.evals import retrieval_eval as re_eval
from vlagent.evals.metrics import rank_of
from vlagent.index.fusion import FusedSearch, fused_search, reciprocal_rank_fusion
from vlagent.index.text_index import ImageText, TextIndex, index_image_texts
from vlagent.settings import Settings
from vlagent.models.context import ToolContext

SAMPLE = Path(str(resources.files("vlagent.evals").joinpath("suites/sample")))


def build(settings: Settings, folder: Path, rows: list[Annotation] | None = None, **kw: Any) -> Any:
    ctx = ToolContext.from_settings(settings, [folder])
    index = TextIndex.open(settings)
    with open_source(folder) as source:
        return index, index_image_texts(source, index, ctx, rows, **kw)


# ----------------------------------------------------------------------------------------
# reciprocal rank fusion
# ----------------------------------------------------------------------------------------
def test_rrf_orders_by_summed_reciprocal_ranks() -> None:
    fused = reciprocal_rank_fusion({"a": ["x", "y", "z"], "b": ["y", "x", "z"], "c": ["y"]}, depth=10)
    assert [i for i, _ in fused] == ["y", "x", "z"]
    # ids a ranking lists twice count once, at their best rank
    assert reciprocal_rank_fusion({"a": ["x", "x", "y"]}) == reciprocal_rank_fusion({"a": ["x", "y"]})


def test_rrf_does_not_punish_images_a_ranking_cannot_rank() -> None:
    # the title ranking covers titled images only: the untitled image the text ranking puts
    # first is not pushed below every titled one (plain summed RRF would put it last)
    rankings = {"title": ["t1", "t2", "t3"], "text": ["u", "t3", "t2", "t1"]}
    covers = {"title": lambda i: i.startswith("t")}
    fused = [i for i, _ in reciprocal_rank_fusion(rankings, covers=covers, depth=50)]
    assert fused[0] == "u"
    summed = {i: sum(1 / (60 + r.index(i) + 1) for r in rankings.values() if i in r) for i in rankings["text"]}
    assert min(summed, key=summed.__getitem__) == "u"  # what plain summed RRF would do


def test_fused_search_reports_sources_and_titles() -> None:
    fused = FusedSearch(
        {"title": lambda t, k: [{"image": "a.jpg", "title": "红色连衣裙"}, {"image": "b.jpg"}][:k],
         "text": lambda t, k: [{"image": "image/a.jpg"}, {"image": "image/c.jpg"}][:k]},
        titles={"a.jpg": "红色连衣裙", "b.jpg": "蓝色衬衫"},
    )  # fmt: skip
    hits = fused.search_text("红色", 3)
    assert [h["image"] for h in hits][0] == "a.jpg"  # first in both
    assert hits[0]["sources"] == {"title": 1, "text": 1} and hits[0]["title"] == "红色连衣裙"
    assert {h["image"] for h in hits} == {"a.jpg", "b.jpg", "image/c.jpg"}
    # the untitled c.jpg (text rank 2) is not ranked below the titled b.jpg (title rank 2, no text)
    assert [h["image"] for h in hits][1:] == ["image/c.jpg", "b.jpg"]
    with pytest.raises(ValueError):
        FusedSearch({})


# ----------------------------------------------------------------------------------------
# the image-text index
# ----------------------------------------------------------------------------------------
@pytest.fixture()
def untitled_catalogue(tmp_path: Path, label_images: dict[str, Path]) -> Path:
    return label_catalogue(tmp_path / "catalogue", label_images, ("label_zh.png", "label_en.png"), ("red_dress.jpg", "grey_cap.jpg"))


def test_untitled_label_image_is_found_by_its_text(untitled_catalogue: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", dataset="untitled")
    index, summary = build(settings, untitled_catalogue)
    assert (summary.total, summary.indexed, summary.failed) == (4, 4, [])
    assert summary.with_text >= 2 and index.with_text() == summary.with_text
    # no titles at all: only the image-text index (its passages, its colours and label words)
    search = fused_search(settings, [])
    assert list(search.rankers) == ["text", "colour", "label"]
    assert search.search_text("MACHINE WASH COLD 100% COTTON", 2)[0]["image"] == "label_en.png"
    assert search.search_text("MADE IN CHINA 纯棉", 2)[0]["image"] == "label_zh.png"
    top = index.search("grey cap 灰色", 4)
    assert rank_of([h["image"] for h in top], ["grey_cap.jpg"]) is not None
    assert "颜色 colours:" in top[0]["passage"]


def test_indexing_is_idempotent_resumable_and_follows_title_changes(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    names = ["red_dress.jpg", "grey_cap.jpg", "blue_shirt.jpg", "yellow_tshirt.jpg"]
    for name in names:
        shutil.copy(SAMPLE / "images" / name, folder / name)
    settings = Settings(home=tmp_path / "home", dataset="resume", ocr_backend="none")

    class Stop(Exception):
        pass

    def stop_after_first_batch(n: int) -> None:
        raise Stop

    with pytest.raises(Stop):  # interrupted after the first batch of 2
        build(settings, folder, batch_size=2, progress=stop_after_first_batch)
    assert TextIndex.open(settings).count() == 2
    _, resumed = build(settings, folder, batch_size=2)
    assert (resumed.indexed, resumed.skipped, resumed.count) == (2, 2, 4)
    _, again = build(settings, folder, batch_size=2)
    assert (again.indexed, again.skipped) == (0, 4)
    rows = [Annotation(image="grey_cap.jpg", title="灰色棒球帽")]
    index, retitled = build(settings, folder, rows, batch_size=2)
    assert (retitled.indexed, retitled.skipped) == (1, 3)
    assert index.search("棒球帽", 1)[0]["image"] == "grey_cap.jpg"


def test_passage_holds_title_text_caption_and_colours() -> None:
    fact = ImageText(image="x.jpg", title="纯棉T恤", ocr="100%\nCOTTON", caption="a white shirt", colors=["白色", "white"])
    assert fact.has_text
    assert fact.passage() == "标题 title: 纯棉T恤. 文字 text: 100% COTTON. caption: a white shirt. 颜色 colours: 白色 white"
    assert not ImageText(image="y.jpg", colors=["红色", "red"]).has_text


# ----------------------------------------------------------------------------------------
# on the shipped suite: the fusion never ranks worse than the best single ranking
# ----------------------------------------------------------------------------------------
def test_fusion_never_ranks_worse_than_the_best_single_ranking_on_the_sample_suite(tmp_path: Path) -> None:
    rows = read_annotations(SAMPLE / "train_annotation.csv")
    settings = Settings(home=tmp_path / "home", dataset="sample", ocr_backend="none")  # colours + titles: fast
    build(settings, SAMPLE / "images", rows)
    fused = fused_search(settings, rows)
    assert set(fused.rankers) == {"title", "text", "colour", "label"}
    queries = re_eval.load_queries()
    assert len(queries) >= 12
    for q in queries:
        per = fused.rankings(q.query)  # each single ranking, then their fusion
        best = min(rank_of([h["image"] for h in hits], [q.gold]) or 99 for hits in per.values())
        got = rank_of([h["image"] for h in fused.fuse(per, 20)], [q.gold]) or 99
        assert got <= best, q.query


# ----------------------------------------------------------------------------------------
# vlagent index: the text side, and the text side only without CLIP
# ----------------------------------------------------------------------------------------
def test_index_command_builds_the_text_side_without_clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vlagent.cli.app import app

    monkeypatch.setenv("VLAGENT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VLAGENT_CLIP_BACKEND", "none")
    monkeypatch.setenv("VLAGENT_OCR_BACKEND", "none")
    monkeypatch.setenv("VLAGENT_CAPTION_BACKEND", "none")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("red_dress.jpg", "grey_cap.jpg"):
        shutil.copy(SAMPLE / "images" / name, folder / name)
    result = CliRunner().invoke(app, ["index", str(folder)])
    assert result.exit_code == 0, result.output
    assert "images carrying text" in result.output
    assert "built the image-text index only" in result.output
    assert TextIndex.open(Settings()).count() == 2


# ----------------------------------------------------------------------------------------
# worker processes (the reader of a real catalogue)
# ----------------------------------------------------------------------------------------
def records_of(index: TextIndex) -> dict[str, tuple[Any, dict[str, Any]]]:
    got = index.store.collection.get(include=["embeddings", "metadatas"])
    return {i: (e, dict(m)) for i, e, m in zip(got["ids"], got["embeddings"], got["metadatas"])}


def test_worker_processes_store_what_this_process_does_and_resume(
    untitled_catalogue: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from vlagent.cache import DiskCache
    from vlagent.index import text_readers

    here = Settings(home=tmp_path / "here", dataset="here", index_workers=1)
    index_here, summary_here = build(here, untitled_catalogue)
    monkeypatch.setattr(text_readers, "MIN_POOL_IMAGES", 2)  # 4 images are enough for the pool here
    pool = Settings(home=tmp_path / "pool", dataset="pool", index_workers=2)

    class Stop(Exception):
        pass

    def stop_after_first_chunk(n: int) -> None:
        raise Stop

    with pytest.raises(Stop):  # interrupted after the first chunk of 2: the workers stop, 2 are stored
        build(pool, untitled_catalogue, batch_size=2, progress=stop_after_first_chunk)
    assert TextIndex.open(pool).count() == 2
    index_pool, resumed = build(pool, untitled_catalogue, batch_size=2)
    assert (resumed.indexed, resumed.skipped, resumed.count, resumed.failed) == (2, 2, 4, [])

    a, b = records_of(index_here), records_of(index_pool)
    assert sorted(a) == sorted(b) and summary_here.with_text == index_pool.with_text() >= 2
    for id_, (vector, meta) in a.items():  # the same passages, embedded in the workers
        np.testing.assert_allclose(b[id_][0], vector, atol=1e-5)
        assert b[id_][1] == meta
    # the workers wrote the OCR and the colours of every image into the tools' cache
    assert len(DiskCache(pool.cache_dir / "tools.sqlite")) == len(DiskCache(here.cache_dir / "tools.sqlite")) == 8


UNGUARDED_SCRIPT = """
import sys
print("top level ran", flush=True)  # a script with no `if __name__ == "__main__":` guard
from vlagent.data.images import open_source
from vlagent.index import text_readers
from vlagent.index.text_index import TextIndex, index_image_texts
from vlagent.models.context import ToolContext
from vlagent.settings import Settings

text_readers.MIN_POOL_IMAGES = 1  # the worker processes, on a small catalogue
settings = Settings(index_workers=2)
with open_source(sys.argv[1]) as source:
    summary = index_image_texts(source, TextIndex.open(settings), ToolContext.from_settings(settings, [sys.argv[1]]))
print("indexed", summary.indexed, "failed", len(summary.failed), flush=True)
"""


def test_a_script_without_a_main_guard_indexes_with_worker_processes(untitled_catalogue: Path, tmp_path: Path) -> None:
    """The workers are fresh interpreters that do not run the caller's script again (``spawn``
    did: each worker re-ran it from the top, and the build failed)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "my_script.py"
    script.write_text(UNGUARDED_SCRIPT, encoding="utf-8")
    env = {**os.environ, "VLAGENT_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, str(script), str(untitled_catalogue)], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("top level ran") == 1, done.stdout
    assert "indexed 4 failed 0" in done.stdout, done.stdout + done.stderr
