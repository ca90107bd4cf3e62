"""The Chroma image index: indexing, idempotence, search, zip == folder, bad input, model mixing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vlagent.data.annotations import read_annotations
from vlagent.data.images import open_source
from vlagent.errors import IndexMismatchError, VlagentError
from vlagent.index.build import index_images
from vlagent.index.search import Retriever
from vlagent.index.store import ImageIndex, collection_name, make_client


class CountingEncoder:
    """The real encoder, counting how many images it was asked to encode."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.images_encoded = 0

    def encode_images(self, images: list[Any]) -> np.ndarray:
        self.images_encoded += len(images)
        return self.inner.encode_images(images)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return self.inner.encode_texts(texts)


def build(settings: Any, encoder: Any, src: Path, csv: Path | None = None) -> tuple[ImageIndex, Any]:
    index = ImageIndex.open(settings, encoder.model_id, encoder.dim)
    with open_source(src) as source:
        summary = index_images(
            source, index, encoder, read_annotations(csv) if csv else None, batch_size=4
        )
    return index, summary


def test_indexed_image_is_found_by_its_own_embedding(catalogue, tiny_clip_encoder, tiny_clip_settings) -> None:  # type: ignore[no-untyped-def]
    index, summary = build(tiny_clip_settings, tiny_clip_encoder, catalogue.folder, catalogue.csv)
    assert (summary.indexed, summary.count, summary.failed) == (len(catalogue.names), len(catalogue.names), [])
    from vlagent.data.images import load_image_file

    images = [load_image_file(catalogue.path(n)) for n in catalogue.names]
    hits = index.query(tiny_clip_encoder.encode_images(images), k=3)
    assert [h[0].image for h in hits] == catalogue.names
    assert all(h[0].score == pytest.approx(1.0, abs=1e-4) for h in hits)
    assert [h[0].title for h in hits] == [catalogue.titles[n] for n in catalogue.names]


def test_reindex_is_idempotent_and_encodes_nothing(catalogue, tiny_clip_encoder, tiny_clip_settings) -> None:  # type: ignore[no-untyped-def]
    build(tiny_clip_settings, tiny_clip_encoder, catalogue.folder, catalogue.csv)
    counting = CountingEncoder(tiny_clip_encoder)
    index, again = build(tiny_clip_settings, counting, catalogue.folder, catalogue.csv)
    assert counting.images_encoded == 0
    assert (again.indexed, again.skipped, again.count) == (0, len(catalogue.names), len(catalogue.names))


def test_changed_title_updates_metadata_without_encoding(catalogue, tiny_clip_encoder, tiny_clip_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    build(tiny_clip_settings, tiny_clip_encoder, catalogue.folder, catalogue.csv)
    first = catalogue.names[0]
    csv = tmp_path / "titles.csv"
    rows = [f"{n},{'新标题' if n == first else catalogue.titles[n].replace(',', ' ')}" for n in catalogue.names]
    csv.write_text("image,title\n" + "\n".join(rows) + "\n", encoding="utf-8")
    counting = CountingEncoder(tiny_clip_encoder)
    index, summary = build(tiny_clip_settings, counting, catalogue.folder, csv)
    assert counting.images_encoded == 0
    assert summary.updated == len(catalogue.names) - summary.skipped >= 1
    got = index.collection.get(where={"file": first}, include=["metadatas"])
    assert got["metadatas"][0]["title"] == "新标题"


def test_image_to_image_and_text_search(catalogue, tiny_clip_encoder, tiny_clip_settings) -> None:  # type: ignore[no-untyped-def]
    build(tiny_clip_settings, tiny_clip_encoder, catalogue.folder, catalogue.csv)
    retriever = Retriever.from_settings(tiny_clip_settings, tiny_clip_encoder)
    source = open_source(catalogue.folder)
    name = catalogue.names[3]
    hits = retriever.search_image(source.open(name), k=5)
    assert hits[0].image == name and len(hits) == 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    text_hits = retriever.search_text(catalogue.titles[name], k=len(catalogue.names) + 5)
    assert sorted(h.image for h in text_hits) == sorted(catalogue.names)  # k is capped at the count


def test_zip_and_folder_give_the_same_index(catalogue, tiny_clip_encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fixtures_clip import make_tiny_clip_settings

    model = tiny_clip_encoder.model_id.split(":", 1)[1]
    a, _ = build(make_tiny_clip_settings(model, tmp_path / "a"), tiny_clip_encoder, catalogue.folder, catalogue.csv)
    b, _ = build(make_tiny_clip_settings(model, tmp_path / "b"), tiny_clip_encoder, catalogue.zip, catalogue.csv)
    ga = a.collection.get(include=["metadatas", "embeddings"])
    gb = b.collection.get(include=["metadatas", "embeddings"])
    assert sorted(ga["ids"]) == sorted(gb["ids"]) and len(ga["ids"]) == len(catalogue.names)
    meta_a = {i: (m["file"], m["title"]) for i, m in zip(ga["ids"], ga["metadatas"])}
    meta_b = {i: (m["file"], m["title"]) for i, m in zip(gb["ids"], gb["metadatas"])}
    assert meta_a == meta_b
    np.testing.assert_allclose(a.embeddings_of(sorted(ga["ids"])), b.embeddings_of(sorted(ga["ids"])), atol=1e-5)


def test_bad_files_are_counted_with_reasons_and_the_rest_indexed(bad_images, tiny_clip_encoder, tiny_clip_settings) -> None:  # type: ignore[no-untyped-def]
    index, summary = build(tiny_clip_settings, tiny_clip_encoder, bad_images.folder)
    failed = {f.image: f.reason for f in summary.failed}
    assert set(failed) == set(bad_images.bad_names)
    for name, word in bad_images.bad_names.items():
        assert word in failed[name], failed[name]
        assert "\n" not in failed[name]
    assert summary.indexed == 2 and summary.duplicates == 1  # good.jpg, good.png; good_copy.jpg = good.jpg
    assert index.count() == 2


def _index_with(settings, encoder, src: Path, processes: int, progress: list[int] | None = None):  # type: ignore[no-untyped-def]
    index = ImageIndex.open(settings, encoder.model_id, encoder.dim)
    with open_source(src) as source:
        summary = index_images(
            source, index, encoder, batch_size=3, decode_processes=processes,
            progress=progress.append if progress is not None else None,
        )  # fmt: skip
    return index, summary


def _pid_logging_load_image(log_dir: Path):  # type: ignore[no-untyped-def]
    import os

    from vlagent.index import build as build_module

    real = build_module.load_image

    def load_image(data, name, max_pixels):  # type: ignore[no-untyped-def]
        (log_dir / f"{os.getpid()}-{abs(hash(name))}").touch()
        return real(data, name, max_pixels)

    return load_image


def test_decoding_in_worker_processes_gives_the_same_index(  # type: ignore[no-untyped-def]
    catalogue, bad_images, tiny_clip_encoder, tmp_path, monkeypatch
) -> None:
    """The GPU path: a DataLoader's worker processes decode and preprocess, this process
    encodes. Same ids, embeddings, failures and counts as decoding in threads."""
    import os

    from fixtures_clip import make_tiny_clip_settings

    from vlagent.index import build as build_module

    folder = tmp_path / "mixed"
    shutil.copytree(catalogue.folder, folder)
    for name in bad_images.bad_names:
        shutil.copy(bad_images.folder / name, folder / name)
    shutil.copy(catalogue.path(catalogue.names[0]), folder / "copy_of_first.jpg")  # a duplicate
    model = tiny_clip_encoder.model_id.split(":", 1)[1]
    threads, by_threads = _index_with(make_tiny_clip_settings(model, tmp_path / "t"), tiny_clip_encoder, folder, 0)
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setattr(build_module, "load_image", _pid_logging_load_image(pids))
    steps: list[int] = []
    procs, by_procs = _index_with(make_tiny_clip_settings(model, tmp_path / "p"), tiny_clip_encoder, folder, 2, steps)
    decoders = {int(p.name.split("-")[0]) for p in pids.iterdir()}
    assert decoders and os.getpid() not in decoders  # decoded in other processes
    # each image decoded once, the duplicate never, the empty file refused before decoding
    assert len(list(pids.iterdir())) == len(catalogue.names) + len(bad_images.bad_names) - 1
    assert by_procs.indexed == by_threads.indexed == len(catalogue.names)
    assert (by_procs.duplicates, by_procs.count) == (by_threads.duplicates, by_threads.count) == (1, len(catalogue.names))
    assert sorted((f.image, f.reason) for f in by_procs.failed) == sorted((f.image, f.reason) for f in by_threads.failed)
    assert sum(steps) == by_procs.total == len(catalogue.names) + len(bad_images.bad_names) + 1
    ids = sorted(threads.collection.get()["ids"])
    assert sorted(procs.collection.get()["ids"]) == ids
    np.testing.assert_allclose(procs.embeddings_of(ids), threads.embeddings_of(ids), atol=1e-5)
    again_steps: list[int] = []
    for p in pids.iterdir():
        p.unlink()
    _, again = _index_with(make_tiny_clip_settings(model, tmp_path / "p"), tiny_clip_encoder, folder, 2, again_steps)
    assert (again.indexed, again.skipped) == (0, len(catalogue.names)) and sum(again_steps) == again.total
    assert len(list(pids.iterdir())) == len(bad_images.bad_names) - 1  # only the bad files are tried again
    for p in pids.iterdir():
        p.unlink()
    _, clean = _index_with(make_tiny_clip_settings(model, tmp_path / "p"), tiny_clip_encoder, catalogue.folder, 2)
    assert clean.skipped == len(catalogue.names) and not list(pids.iterdir())  # nothing new: no decoding at all


def test_decode_processes_follow_the_device_and_the_setting(tiny_clip_encoder) -> None:  # type: ignore[no-untyped-def]
    from vlagent.index.build import MAX_AUTO_DECODE_PROCESSES, decode_processes_for

    class OnGpu:
        device, decode_processes = "cuda:0", None

        def pixel_transform(self): ...  # type: ignore[no-untyped-def]

        def encode_pixels(self, pixels): ...  # type: ignore[no-untyped-def]

    assert decode_processes_for(tiny_clip_encoder) == 0  # CPU: threads, as before
    assert 1 <= decode_processes_for(OnGpu()) <= MAX_AUTO_DECODE_PROCESSES
    gpu = OnGpu()
    gpu.decode_processes = 0  # VLAGENT_CLIP_DECODE_PROCESSES=0
    assert decode_processes_for(gpu) == 0 and decode_processes_for(gpu, 3) == 3
    assert decode_processes_for(CountingEncoder(tiny_clip_encoder), 4) == 0  # no pixel path: threads


def test_annotation_rows_naming_missing_files_are_reported(catalogue, annotation_variants, tiny_clip_encoder, tiny_clip_settings) -> None:  # type: ignore[no-untyped-def]
    from fixtures_data import MISSING_NAME

    _, summary = build(tiny_clip_settings, tiny_clip_encoder, catalogue.folder, annotation_variants.missing_file)
    assert summary.missing == [MISSING_NAME]
    assert summary.indexed == len(catalogue.names)


def test_collections_of_two_models_never_mix(tiny_clip_settings) -> None:  # type: ignore[no-untyped-def]
    client = make_client(tiny_clip_settings)
    a = ImageIndex(client, "shop", "model-a", 16)
    b = ImageIndex(client, "shop", "model-b", 16)
    assert a.name != b.name  # one collection per (model, dataset)
    client.create_collection(
        collection_name("other", "model-b"), metadata={"model_id": "model-a", "dim": 16}, embedding_function=None
    )
    with pytest.raises(IndexMismatchError, match="model-a"):
        ImageIndex(client, "other", "model-b", 16)
    with pytest.raises(IndexMismatchError, match="embedding size"):
        a.upsert(["x"], np.zeros((1, 8), dtype=np.float32), [{"file": "x"}])


def test_search_without_an_index_explains_what_to_do(tiny_clip_encoder, tiny_clip_settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(VlagentError, match="vlagent index"):
        Retriever.from_settings(tiny_clip_settings, tiny_clip_encoder)
    ImageIndex(make_client(tiny_clip_settings), tiny_clip_settings.dataset, "open_clip:other", 16).upsert(
        ["a"], np.ones((1, 16), dtype=np.float32) / 4, [{"file": "a.jpg", "title": ""}]
    )
    with pytest.raises(VlagentError, match="open_clip:other"):
        Retriever.from_settings(tiny_clip_settings, tiny_clip_encoder)


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture
def cli_env(tiny_clip, tmp_path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        "VLAGENT_HOME": str(tmp_path / "home"),
        "VLAGENT_CLIP_MODEL": tiny_clip["chinese_clip"][0],
        "VLAGENT_DEVICE": "cpu",
        "VLAGENT_CLIP_BATCH_SIZE": "4",
    }


def run(args: list[str], env: dict[str, str]) -> Any:
    from typer.testing import CliRunner

    from vlagent.cli.app import app

    return CliRunner().invoke(app, args, env=env)


def test_cli_index_search_classify(catalogue, bad_images, cli_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "images"
    shutil.copytree(catalogue.folder, folder)
    shutil.copy(bad_images.empty, folder / "empty.jpg")
    result = run(["index", str(folder), "--annotations", str(catalogue.csv)], cli_env)
    assert result.exit_code == 0, result.output
    assert "indexed" in result.output and "failed" in result.output and "empty.jpg" in result.output
    again = run(["index", str(folder), "-a", str(catalogue.csv)], cli_env)
    assert re.search(r"skipped \(unchanged\)\s*│\s*(\d+)", again.output).group(1) == str(len(catalogue.names))
    assert re.search(r"indexed\s*│\s*(\d+)", again.output).group(1) == "0"

    found = run(["search", catalogue.titles[catalogue.names[0]], "-k", "3"], cli_env)
    assert found.exit_code == 0, found.output
    assert sum(n.split("/")[-1] in found.output for n in catalogue.names) == 3

    by_image = run(["search", "--image", str(catalogue.path(catalogue.names[2])), "-k", "2", "--json"], cli_env)
    assert by_image.exit_code == 0, by_image.output
    hits = json.loads(by_image.stdout)
    assert [h["image"] for h in hits][:1] == [catalogue.names[2]] and len(hits) == 2

    zs = run(["classify", str(catalogue.path(catalogue.names[0])), "--labels", "连衣裙,衬衫,裤子"], cli_env)
    assert zs.exit_code == 0, zs.output
    assert all(label in zs.output for label in ("连衣裙", "衬衫", "裤子"))


def test_cli_bad_input_is_one_clear_line(cli_env, bad_images, tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing = run(["index", str(tmp_path / "nope")], cli_env)
    assert missing.exit_code == 2 and "no such image folder" in missing.output
    unknown = run(["search", "红色", "--model", str(tmp_path / "no-such-model")], cli_env)
    assert unknown.exit_code == 2
    assert "no-such-model" in unknown.output and "VLAGENT_CLIP_MODEL" in unknown.output
    assert "Traceback" not in unknown.output
    bad = run(["search", "--image", str(bad_images.text)], cli_env)
    assert bad.exit_code == 2 and "not an image" in bad.output
    neither = run(["search"], cli_env)
    assert neither.exit_code == 2 and "either a query text or --image" in neither.output


def test_cli_index_reports_rows_naming_missing_images_and_refuses_symlinks_out(  # type: ignore[no-untyped-def]
    catalogue, annotation_variants, cli_env, tmp_path
) -> None:
    from fixtures_data import MISSING_NAME

    folder = tmp_path / "images"
    shutil.copytree(catalogue.folder, folder)
    (tmp_path / "secret.jpg").write_bytes(catalogue.path(catalogue.names[0]).read_bytes()[::-1])
    (folder / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    result = run(["index", str(folder), "-a", str(annotation_variants.missing_file)], cli_env)
    assert result.exit_code == 0, result.output
    assert re.search(r"annotation rows with no file\s*│\s*1\b", result.output)
    assert f"annotation rows naming no image file: {MISSING_NAME}" in result.output
    assert "link.jpg: leaves the catalogue folder images" in result.output  # not read, not indexed
    assert re.search(r"indexed\s*│\s*(\d+)", result.output).group(1) == str(len(catalogue.names))
