"""Zero-shot categories over a catalogue: ``vlagent classify --images ... --out categories.csv``."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlagent.enrich.categories import DEFAULT_CATEGORIES, classify_catalogue, parse_labels, read_categories
from vlagent.cli.app import app
from vlagent.data.images import open_source
from vlagent.errors import DataError
from vlagent.models.zeroshot import zero_shot
from vlagent.settings import Settings

LABELS = ["连衣裙", "衬衫", "裤子"]


def test_every_image_gets_the_category_zero_shot_gives_it(tiny_clip_encoder, catalogue, tmp_path: Path) -> None:
    out = tmp_path / "categories.csv"
    with open_source(catalogue.folder) as source:
        summary = classify_catalogue(tiny_clip_encoder, source, LABELS, out, max_pixels=10**8, batch_size=5)
        first = source.open(catalogue.names[0])
    assert (summary.total, summary.classified, summary.failed) == (12, 12, [])
    with out.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["image"] for r in rows] == catalogue.names
    assert {r["category"] for r in rows} <= set(LABELS)
    top = zero_shot(tiny_clip_encoder, first, LABELS)[0]
    assert (rows[0]["category"], float(rows[0]["score"])) == (top.label, pytest.approx(top.probability, abs=1e-4))
    assert read_categories(out) == {r["image"]: r["category"] for r in rows}
    assert not (tmp_path / "categories.csv.partial.jsonl").exists()


def test_an_interrupted_run_resumes_and_other_labels_start_over(tiny_clip_encoder, catalogue, tmp_path: Path) -> None:
    out = tmp_path / "categories.csv"

    def stop(_n: int) -> None:
        raise KeyboardInterrupt

    with open_source(catalogue.folder) as source:
        with pytest.raises(KeyboardInterrupt):
            classify_catalogue(tiny_clip_encoder, source, LABELS, out, max_pixels=10**8, batch_size=5, progress=stop)
        assert not out.exists()
        assert len((tmp_path / "categories.csv.partial.jsonl").read_text("utf-8").splitlines()) == 1 + 5
        resumed = classify_catalogue(tiny_clip_encoder, source, LABELS, out, max_pixels=10**8, batch_size=5)
        assert (resumed.done_before, resumed.classified) == (5, 7)
        with pytest.raises(KeyboardInterrupt):
            classify_catalogue(tiny_clip_encoder, source, LABELS, out, max_pixels=10**8, batch_size=5, progress=stop)
        other = classify_catalogue(tiny_clip_encoder, source, ["帽子", "包"], out, max_pixels=10**8)
    assert other.done_before == 0 and set(read_categories(out).values()) <= {"帽子", "包"}


def test_unreadable_images_are_counted(tiny_clip_encoder, bad_images, tmp_path: Path) -> None:
    with open_source(bad_images.folder) as source:
        summary = classify_catalogue(tiny_clip_encoder, source, LABELS, tmp_path / "c.csv", max_pixels=64_000_000)
    assert sorted(summary.failed) == sorted(bad_images.bad_names) and summary.classified == 3


def test_labels_default_to_ecommerce_categories_and_the_setting_is_read(tmp_path: Path, monkeypatch) -> None:
    assert parse_labels(None, "en") == DEFAULT_CATEGORIES["en"] and len(DEFAULT_CATEGORIES["zh"]) == len(DEFAULT_CATEGORIES["en"])
    assert parse_labels("连衣裙， 衬衫,连衣裙") == ["连衣裙", "衬衫"]
    monkeypatch.setenv("VLAGENT_CATEGORIES", str(tmp_path / "c.csv"))
    assert Settings().categories_path == tmp_path / "c.csv"
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\na.jpg,x\n", encoding="utf-8")
    with pytest.raises(DataError, match="image,category"):
        read_categories(bad)


def test_cli_catalogue_form_and_single_image_form(tiny_clip, catalogue, tmp_path: Path) -> None:
    env = {"VLAGENT_HOME": str(tmp_path / "home"), "VLAGENT_CLIP_MODEL": tiny_clip["chinese_clip"][0],
           "VLAGENT_DEVICE": "cpu", "VLAGENT_CLIP_BATCH_SIZE": "4"}  # fmt: skip
    out = tmp_path / "categories.csv"
    result = CliRunner().invoke(app, ["classify", "--images", str(catalogue.zip), "--labels", "连衣裙,衬衫,裤子", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert f"VLAGENT_CATEGORIES={out}" in result.output.replace("\n", "")
    assert len(read_categories(out)) == 12
    one = CliRunner().invoke(app, ["classify", str(catalogue.path(catalogue.names[0])), "--lang", "en"], env=env)
    assert one.exit_code == 0, one.output
    assert "zero-shot" in one.output and "probability" in one.output
    both = CliRunner().invoke(app, ["classify"], env=env)
    assert both.exit_code == 2 and "either one IMAGE or --images" in both.output


def test_the_agent_uses_a_category_as_the_title_hint_of_an_untitled_image(tmp_path: Path) -> None:
    from vlagent.agent.build import title_hints
    from vlagent.errors import DataError
    from vlagent.settings import Settings

    csv_path = tmp_path / "categories.csv"
    csv_path.write_text("image,category,score\nshoe.jpg,运动鞋,0.9\ndress.jpg,连衣裙,0.8\n", encoding="utf-8")
    settings = Settings(home=tmp_path / "home", categories_path=csv_path)
    hints = title_hints(settings, {"dress.jpg": "红色连衣裙 女"})
    assert hints["dress.jpg"] == "红色连衣裙 女"  # a real title wins
    assert hints["shoe.jpg"].startswith("运动鞋") and "zero-shot" in hints["shoe.jpg"]
    assert title_hints(Settings(home=tmp_path / "home"), {"a.jpg": "t"}) == {"a.jpg": "t"}
    with pytest.raises(DataError, match="no such categories file"):
        title_hints(Settings(home=tmp_path / "home", categories_path=tmp_path / "missing.csv"), {})
