"""`vlagent index --engine ray` builds the image-text index too: OCR and colours in Ray tasks,
the passages upserted by the driver; the same records as the local path, resumable."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fixtures_vision import label_catalogue
from vlagent.data.images import open_source
from vlagent.index.fusion import fused_search
from vlagent.index.text_index import TextIndex, index_image_texts
from vlagent.models.context import ToolContext
from vlagent.settings import Settings

pytest.importorskip("ray")

from vlagent.distributed import ray_index  # noqa: E402
from vlagent.distributed.ray_text_index import index_texts_with_ray  # noqa: E402

SAMPLE = Path(str(resources.files("vlagent.evals").joinpath("suites/sample")))


@pytest.fixture()
def labelled(tmp_path: Path, label_images: dict[str, Path]) -> Path:
    folder = label_catalogue(tmp_path / "catalogue", label_images, ("label_zh.png", "label_en.png"),
                             ("red_dress.jpg", "grey_cap.jpg", "blue_shirt.jpg"))  # fmt: skip
    shutil.copy(SAMPLE / "images" / "red_dress.jpg", folder / "red_dress_copy.jpg")  # the same bytes twice
    return folder


def records(settings: Settings) -> dict[str, dict[str, object]]:
    got = TextIndex.open(settings).store.collection.get(include=["metadatas"])
    return {i: {k: v for k, v in dict(m).items() if k != "source"} for i, m in zip(got["ids"], got["metadatas"])}


def test_index_engine_ray_builds_the_image_text_index_and_finds_a_label_by_its_text(
    ray_local, labelled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    from vlagent.cli.app import app

    for key, value in {"VLAGENT_HOME": str(tmp_path / "home"), "VLAGENT_CLIP_BACKEND": "none",
                       "VLAGENT_CAPTION_BACKEND": "none", "VLAGENT_DATASET": "ray"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["index", str(labelled), "--engine", "ray"])
    assert result.exit_code == 0, result.output
    assert "built the image-text index only" in result.output
    settings = Settings()
    on_ray = records(settings)
    assert len(on_ray) == 5  # the duplicate file is one record
    search = fused_search(settings, [])
    assert search.search_text("MACHINE WASH COLD 100% COTTON", 3)[0]["image"] == "label_en.png"
    assert search.search_text("MADE IN CHINA 纯棉", 3)[0]["image"] == "label_zh.png"

    # the local path gives the same records (OCR and colours from the cache the Ray tasks filled)
    local = settings.model_copy(update={"dataset": "local"})
    with open_source(labelled) as source:
        summary = index_image_texts(source, TextIndex.open(local), ToolContext.from_settings(local, [labelled]))
    assert (summary.indexed, summary.skipped) == (5, 1)
    assert records(local) == on_ray

    # a second run on Ray reads nothing
    again = index_texts_with_ray(labelled, settings)
    assert (again.indexed, again.skipped, again.count, again.failed) == (0, 6, 5, [])


def test_a_killed_ray_run_continues_where_it_stopped(
    ray_local, labelled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    from vlagent.distributed import ray_text_index

    settings = Settings(home=tmp_path / "home", dataset="resume", ocr_backend="none")
    monkeypatch.setattr(ray_text_index, "UPSERT_BATCH", 2)  # the driver upserts 2 at a time
    assert ray_index.UPSERT_BATCH != 2  # (the CLIP pipeline's own batch is not touched)

    def kill_after_first_upsert(stage: str, n: int, total: int) -> None:
        if stage == "read":
            raise KeyboardInterrupt  # as Ctrl-C in the driver, after one batch is in the index

    with pytest.raises(KeyboardInterrupt):
        index_texts_with_ray(labelled, settings, progress=kill_after_first_upsert)
    assert TextIndex.open(settings).count() == 2
    again = index_texts_with_ray(labelled, settings)
    assert (again.indexed, again.skipped, again.count) == (3, 3, 5)  # 2 stored + the duplicate skipped
