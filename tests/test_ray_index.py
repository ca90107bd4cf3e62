"""`vlagent index --engine ray`: same ids and embeddings as the local path, resumable, one-line errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from fixtures_clip import make_tiny_clip_settings
from vlagent.data.annotations import read_annotations
from vlagent.data.images import open_source
from vlagent.errors import VlagentError
from vlagent.index.build import index_images
from vlagent.index.store import ImageIndex

pytest.importorskip("ray")

from vlagent.distributed import ray_index  # noqa: E402
from vlagent.distributed.ray_index import index_with_ray  # noqa: E402

runner = CliRunner()


def all_records(index: ImageIndex) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    got = index.collection.get(include=["embeddings", "metadatas"])
    return {i: (np.asarray(e, dtype=np.float32), dict(m)) for i, e, m in zip(got["ids"], got["embeddings"], got["metadatas"])}


def test_ray_and_local_paths_give_the_same_ids_and_embeddings(ray_local, catalogue, tiny_clip, tiny_clip_encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = tiny_clip["chinese_clip"][0]
    local_settings = make_tiny_clip_settings(model, tmp_path / "local")
    ray_settings = make_tiny_clip_settings(model, tmp_path / "ray")
    rows = read_annotations(catalogue.csv)
    local_index = ImageIndex.open(local_settings, tiny_clip_encoder.model_id, tiny_clip_encoder.dim)
    with open_source(catalogue.folder) as source:
        local = index_images(source, local_index, tiny_clip_encoder, rows, batch_size=4)

    stages: dict[str, int] = {}
    remote = index_with_ray(
        catalogue.folder, ray_settings, rows,
        progress=lambda stage, n, total: stages.__setitem__(stage, stages.get(stage, 0) + n),
    )  # fmt: skip

    assert remote.model_dump() == local.model_dump()  # the same summary, field by field
    assert remote.indexed == len(catalogue.names) and remote.failed == []
    assert stages == {"hash": len(catalogue.names), "encode": len(catalogue.names)}
    a = all_records(local_index)
    b = all_records(ImageIndex.open(ray_settings, tiny_clip_encoder.model_id, tiny_clip_encoder.dim))
    assert sorted(a) == sorted(b)
    for id_, (vec, meta) in a.items():
        np.testing.assert_allclose(b[id_][0], vec, atol=1e-5)
        assert b[id_][1] == meta


def test_a_killed_ray_run_continues_where_it_stopped(ray_local, catalogue, tiny_clip, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_tiny_clip_settings(tiny_clip["chinese_clip"][0], tmp_path / "home")
    monkeypatch.setattr(ray_index, "UPSERT_BATCH", 4)  # the driver upserts 4 at a time

    def kill_after_first_upsert(stage: str, n: int, total: int) -> None:
        if stage == "encode":
            raise KeyboardInterrupt  # as Ctrl-C in the driver, after one batch is in the index

    with pytest.raises(KeyboardInterrupt):
        index_with_ray(catalogue.folder, settings, progress=kill_after_first_upsert)
    again = index_with_ray(catalogue.folder, settings)
    assert again.skipped == 4  # the batch upserted before the kill is not encoded again
    assert again.indexed == len(catalogue.names) - 4
    assert again.count == len(catalogue.names)


def test_bad_files_and_duplicates_are_counted_like_the_local_path(ray_local, bad_images, tiny_clip, tiny_clip_encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = tiny_clip["chinese_clip"][0]
    local_settings = make_tiny_clip_settings(model, tmp_path / "local", max_image_pixels=10_000_000)
    ray_settings = make_tiny_clip_settings(model, tmp_path / "ray", max_image_pixels=10_000_000)
    with open_source(bad_images.folder) as source:
        local = index_images(
            source, ImageIndex.open(local_settings, tiny_clip_encoder.model_id, tiny_clip_encoder.dim),
            tiny_clip_encoder, batch_size=4, max_pixels=10_000_000,
        )  # fmt: skip
    remote = index_with_ray(bad_images.folder, ray_settings)
    assert sorted(f.image for f in remote.failed) == sorted(f.image for f in local.failed)
    assert {f.image: f.reason for f in remote.failed} == {f.image: f.reason for f in local.failed}
    assert (remote.indexed, remote.duplicates, remote.count) == (local.indexed, local.duplicates, local.count) == (2, 1, 2)


def test_a_model_that_cannot_load_on_the_workers_is_one_line(ray_local, catalogue, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_tiny_clip_settings(str(tmp_path / "no_such_model"), tmp_path / "home")
    with pytest.raises(VlagentError) as err:
        index_with_ray(catalogue.folder, settings)
    assert "no_such_model" in str(err.value) and "\n" not in str(err.value)


def test_index_command_with_engine_ray(ray_local, catalogue, tiny_clip, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from vlagent.cli.app import app

    home = tmp_path / "home"
    monkeypatch.setenv("VLAGENT_HOME", str(home))
    monkeypatch.setenv("VLAGENT_CLIP_BATCH_SIZE", "4")
    monkeypatch.setenv("VLAGENT_DEVICE", "cpu")
    args = ["index", str(catalogue.zip), "-a", str(catalogue.csv), "--model", tiny_clip["chinese_clip"][0], "--no-text"]
    result = runner.invoke(app, [*args, "--engine", "ray"])
    assert result.exit_code == 0, result.output
    assert "records in index" in result.output and str(len(catalogue.names)) in result.output
    local = runner.invoke(app, args)  # the local path sees the Ray run's records as unchanged
    assert local.exit_code == 0, local.output
    skipped = next(line for line in local.output.splitlines() if "skipped" in line)
    assert str(len(catalogue.names)) in skipped


from test_chroma_server import chroma_server  # noqa: E402,F401 - the module's `chroma run` fixture


def test_ray_run_upserts_into_the_chroma_server(ray_local, chroma_server, catalogue, tiny_clip, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_tiny_clip_settings(
        tiny_clip["chinese_clip"][0], tmp_path / "home", chroma_url=chroma_server, hnsw_m=12, hnsw_search_ef=64
    )
    summary = index_with_ray(catalogue.folder, settings)
    assert (summary.indexed, summary.count) == (len(catalogue.names), len(catalogue.names))
    assert not (tmp_path / "home" / "index").exists()  # nothing went to the embedded store
    index = ImageIndex.open(settings, summary.model_id, 16)
    assert index.count() == len(catalogue.names)
    hnsw = index.collection.configuration["hnsw"]
    assert (hnsw["max_neighbors"], hnsw["ef_search"]) == (12, 64)  # the settings reached the server
