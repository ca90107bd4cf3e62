"""``vlagent caption``: batch captions that resume from their output and skip cached images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlagent.enrich.captions import caption_catalogue, choose_captioner, read_captions
from vlagent.cli.app import app
from vlagent.data.images import open_source
from vlagent.errors import DataError, ToolUnavailable
from vlagent.settings import Settings


def blip_settings(blip_dir: Path, home: Path, **kw) -> Settings:
    values = dict(home=home, device="cpu", caption_backend="transformers", caption_model=str(blip_dir),
                  caption_max_new_tokens=4, caption_num_beams=1, vqa_backend="none")  # fmt: skip
    values.update(kw)
    return Settings(**values)


def blip_calls(settings: Settings) -> int:
    from vlagent.models.caption import engine

    return engine(settings).calls


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_the_cache_skips_work_on_the_second_run(tiny_blip_dir, catalogue, tmp_path: Path) -> None:
    settings = blip_settings(tiny_blip_dir, tmp_path / "home")
    with open_source(catalogue.folder) as source:
        first = caption_catalogue(source, tmp_path / "a.jsonl", settings, batch_size=8)
        calls = blip_calls(settings)
        second = caption_catalogue(source, tmp_path / "b.jsonl", settings, batch_size=8)
    assert (first.captioned, first.cache_hits, first.failed) == (12, 0, 0)
    assert (second.captioned, second.cache_hits) == (12, 12)
    assert blip_calls(settings) == calls  # no BLIP batch ran the second time
    assert read_captions(tmp_path / "a.jsonl") == read_captions(tmp_path / "b.jsonl")
    assert [r["image"] for r in rows(tmp_path / "a.jsonl")] == catalogue.names  # catalogue order
    assert {(r["lang"], r["style"], r["engine"]) for r in rows(tmp_path / "a.jsonl")} == {("en", "concise", "blip")}


def test_an_interrupted_run_resumes_from_its_output(tiny_blip_dir, catalogue, tmp_path: Path) -> None:
    settings = blip_settings(tiny_blip_dir, tmp_path / "home")
    out = tmp_path / "captions.jsonl"

    def stop(_n: int) -> None:
        raise KeyboardInterrupt

    with open_source(catalogue.folder) as source:
        with pytest.raises(KeyboardInterrupt):
            caption_catalogue(source, out, settings, batch_size=5, progress=stop)
        assert len(rows(out)) == 5  # the finished batch was kept
        before = blip_calls(settings)
        summary = caption_catalogue(source, out, settings, batch_size=5)
    assert (summary.done_before, summary.captioned, summary.cache_hits) == (5, 7, 0)
    assert blip_calls(settings) - before == 2  # 7 images left: batches of 5 and 2
    assert [r["image"] for r in rows(out)] == catalogue.names


def test_bad_images_are_recorded_and_the_run_goes_on(tiny_blip_dir, bad_images, tmp_path: Path) -> None:
    settings = blip_settings(tiny_blip_dir, tmp_path / "home")
    with open_source(bad_images.folder) as source:
        summary = caption_catalogue(source, tmp_path / "c.jsonl", settings)
    errors = {r["image"]: r["error"] for r in rows(tmp_path / "c.jsonl") if r["error"]}
    assert set(errors) == set(bad_images.bad_names) and summary.failed == len(errors)
    assert summary.captioned == 3


def test_chinese_captions_use_the_vlm_when_one_is_configured(tiny_blip_dir, tiny_qwen2vl_dir, catalogue, tmp_path: Path) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    for name in catalogue.names[:2]:
        shutil.copy(catalogue.path(name), folder / Path(name).name)
    settings = blip_settings(tiny_blip_dir, tmp_path / "home", vqa_backend="transformers",
                             vqa_model=str(tiny_qwen2vl_dir), vqa_max_new_tokens=3)  # fmt: skip
    assert choose_captioner(settings, "en", "concise").engine == "blip"
    with open_source(folder) as source:
        summary = caption_catalogue(source, tmp_path / "zh.jsonl", settings, lang="zh")
    assert summary.captioner.engine == "vlm" and summary.captioned == 2
    assert {(r["lang"], r["engine"]) for r in rows(tmp_path / "zh.jsonl")} == {("zh", "vlm")}
    with open_source(folder) as source, pytest.raises(DataError, match="another --out"):
        caption_catalogue(source, tmp_path / "zh.jsonl", settings, lang="en")


def test_chinese_with_blip_only_says_the_captions_are_english(tiny_blip_dir, tmp_path: Path) -> None:
    captioner = choose_captioner(blip_settings(tiny_blip_dir, tmp_path), "zh", "detailed")
    assert (captioner.engine, captioner.lang) == ("blip", "en")
    assert "VLAGENT_VQA_BASE_URL" in (captioner.note or "")


def test_nothing_configured_names_what_is_missing(catalogue, tmp_path: Path, monkeypatch) -> None:
    settings = Settings(home=tmp_path, caption_backend="none", vqa_backend="none")
    with pytest.raises(ToolUnavailable, match="VLAGENT_CAPTION_MODEL.*VLAGENT_VQA_BASE_URL"):
        choose_captioner(settings, "en", "concise")
    monkeypatch.setenv("VLAGENT_HOME", str(tmp_path))
    monkeypatch.setenv("VLAGENT_CAPTION_BACKEND", "none")
    monkeypatch.setenv("VLAGENT_VQA_BACKEND", "none")
    result = CliRunner().invoke(app, ["caption", str(catalogue.folder), "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 2 and "no captioning model here" in result.output
    assert "Traceback" not in result.output


def test_cli_captions_a_zip(tiny_blip_dir, catalogue, tmp_path: Path, monkeypatch) -> None:
    for key, value in {"HOME": tmp_path / "home", "CAPTION_MODEL": tiny_blip_dir, "DEVICE": "cpu",
                       "VQA_BACKEND": "none", "CAPTION_MAX_NEW_TOKENS": 4, "CAPTION_NUM_BEAMS": 1}.items():  # fmt: skip
        monkeypatch.setenv(f"VLAGENT_{key}", str(value))
    out = tmp_path / "captions.jsonl"
    result = CliRunner().invoke(app, ["caption", "--images", str(catalogue.zip), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "12 images: 12 captioned now" in result.output
    assert len(read_captions(out)) == 12
