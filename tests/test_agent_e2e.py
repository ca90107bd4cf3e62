"""build_agent end to end on the real in-process paths: tiny Chinese-CLIP + Chroma, tiny BLIP,
tiny Qwen2-VL, a tiny Qwen2 causal LM (transformers backend), the real rapidocr and colours.

The learned classifier decides the type; the tiny LLM is asked to vote on every question (a
fusion fit that always asks), writes gibberish, and its failed vote leaves the learned model's
decision — the LLM's path runs end to end, and the trace says why its vote did not count."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from vlagent import build_agent
from vlagent.settings import Settings


@pytest.fixture(scope="module")
def shop(catalogue, label_images, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """The catalogue plus two rendered clothing labels, in one folder."""
    folder = tmp_path_factory.mktemp("shop") / "images"
    shutil.copytree(catalogue.folder, folder)
    for name in ("label_zh.png", "label_en.png"):
        shutil.copy(label_images[name], folder / name)
    return folder


@pytest.fixture(scope="module")
def e2e_settings(tiny_clip, tiny_blip_dir, tiny_qwen2vl_dir, tiny_causal_lm_dir, tmp_path_factory) -> Settings:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("e2e-home")
    return Settings(
        home=home, device="cpu",
        clip_model=tiny_clip["chinese_clip"][0], clip_batch_size=4,
        caption_model=str(tiny_blip_dir),
        vqa_backend="transformers", vqa_model=str(tiny_qwen2vl_dir), vqa_max_new_tokens=4,
        llm_backend="transformers", llm_model=str(tiny_causal_lm_dir), llm_max_tokens=8,
    )  # fmt: skip


@pytest.fixture(scope="module")
def vote_server():  # type: ignore[no-untyped-def]
    """An OpenAI-compatible fake that votes like a real engine (one token, its top log-probabilities)
    for the learned model's type: the tiny random LLM writes the answers, but its vote is gibberish."""
    from fake_servers import FakeOpenAIServer

    server = FakeOpenAIServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def agent(e2e_settings, shop, catalogue, vote_server):  # type: ignore[no-untyped-def]
    from langchain_openai import ChatOpenAI

    from vlagent.agent.understand import llm_name
    from vlagent.agent.vote import Fusion, write_fusion

    voter = ChatOpenAI(model="fake-voter", base_url=vote_server.url, api_key="x", max_retries=0)
    built = build_agent(e2e_settings, images=[shop], annotations=catalogue.csv, classifier_llm=voter)
    write_fusion(Fusion(model=llm_name(voter), llm_weight=1.0, ask_below=1.01), e2e_settings.home / "fusion")
    return built


def test_every_tool_is_available_with_local_models(agent) -> None:  # type: ignore[no-untyped-def]
    assert agent.tool_names == ["caption", "clip_search", "colors", "image_search", "match", "ocr", "recommend", "vqa"]
    assert agent.parts.unavailable == {}


def test_retrieval_searches_the_auto_built_index(agent, catalogue, vote_server) -> None:  # type: ignore[no-untyped-def]
    title = catalogue.titles[catalogue.names[0]]
    answer = agent.invoke(f"请匹配到与 {title} 最相关的图片。")
    assert answer.type == "retrieve"
    understood = answer.trace[0]
    assert understood.name == "understand" and understood.args["question"].startswith("请匹配到与")
    # the LLM was asked (always: ask_below 1.01) and its vote was pooled with the learned model's
    assert answer.classifier == "fused" and not understood.error
    assert vote_server.questions()[-1] == f"请匹配到与 {title} 最相关的图片。"
    assert len(answer.images) == 10 and set(answer.image_ids) <= set(catalogue.names) | {"label_zh.png", "label_en.png"}
    (search,) = [t for t in answer.trace if t.name == "clip_search"]
    assert search.ok and search.args["text"] == title
    assert answer.image_ids[0] in answer.text


def test_ocr_question_reads_the_label_with_the_real_ocr(agent) -> None:  # type: ignore[no-untyped-def]
    answer = agent.invoke("请识别图片中标签上的文字。", images=["label_en.png"])
    assert answer.type == "ocr"
    (ocr,) = [t for t in answer.trace if t.name == "ocr"]
    assert ocr.ok and "COTTON" in ocr.output["text"].upper()
    vqa = [t for t in answer.trace if t.name == "vqa"]
    assert vqa and "COTTON" in vqa[0].args["question"].upper()  # OCR text handed to the VLM
    assert answer.text.strip()


def test_describe_and_compare_run_blip_qwen2vl_and_colours(agent, catalogue) -> None:  # type: ignore[no-untyped-def]
    a, b = catalogue.names[:2]
    described = agent.invoke("请对给定的图片进行描述。", images=[a])
    assert {t.name for t in described.trace if t.ok} >= {"caption", "vqa", "colors"}
    assert {"ocr", "answer_llm"} <= {t.name for t in described.trace} and described.text.strip()
    compared = agent.invoke("这两件衣服有什么区别？", images=[a, b])
    assert compared.type == "compare"
    assert sorted(t.args["image"] for t in compared.trace if t.name == "colors") == sorted([a, b])


def test_second_identical_question_does_no_image_model_work(e2e_settings, shop, catalogue) -> None:  # type: ignore[no-untyped-def]
    agent = build_agent(e2e_settings, images=[shop], annotations=catalogue.csv)
    cache: Any = agent.ctx.cache
    agent.invoke("这件衣服是什么颜色的？", images=[catalogue.names[3]])
    misses = cache.misses
    agent.invoke("这件衣服是什么颜色的？", images=[catalogue.names[3]])
    assert cache.misses == misses and cache.hits > 0


def test_prepare_batches_retrieval_queries_and_captions(e2e_settings, shop, catalogue) -> None:  # type: ignore[no-untyped-def]
    agent = build_agent(e2e_settings, images=[shop], annotations=catalogue.csv)
    items = [
        {"question": f"请匹配到与 {catalogue.titles[n]} 最相关的图片。", "images": []} for n in catalogue.names[:3]
    ] + [{"question": "请对给定的图片进行描述。", "images": [catalogue.names[5]]}]
    done = agent.prepare(items)
    assert done["clip_search"] == 3 and done["caption"] == 1 and done["ocr"] == 1  # read from the plan table
    assert agent.prepare(items)["clip_search"] == 0  # already encoded


def test_missing_models_are_dropped_and_the_agent_still_answers(tiny_causal_lm_dir, catalogue, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(
        home=tmp_path, device="cpu", profile="offline", clip_model=str(tmp_path / "no-clip"),
        caption_model=str(tmp_path / "no-blip"), caption_backend="transformers", vqa_backend="none",
        llm_backend="none",
    )  # fmt: skip
    agent = build_agent(settings, images=[catalogue.folder], annotations=catalogue.csv)
    assert set(agent.parts.unavailable) == {"llm", "caption", "vqa", "clip_search", "image_search"}
    assert "title_search" in agent.tool_names and "recommend" in agent.tool_names  # in the titles' space
    name = catalogue.names[0]
    found = agent.invoke(f"请匹配到与 {catalogue.titles[name]} 最相关的图片。")
    assert found.image_ids[0] == name  # the exact title wins the TF-IDF title search
    colour = agent.invoke("这是什么颜色的？", images=[name])
    assert colour.type == "vqa" and colour.text.strip()
    assert colour.unavailable_tools == sorted(agent.parts.unavailable)


def test_a_second_eval_run_reuses_every_image_result_from_the_disk_cache(e2e_settings, shop, catalogue, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from vlagent.evals.harness import run_eval

    home = tmp_path / "home"
    settings = e2e_settings.model_copy(update={"home": home})
    a, b = catalogue.names[4:6]
    query = tmp_path / "query.json"
    query.write_text(json.dumps([
        {"question": "请对给定的图片进行描述。", "related_image": a, "answer": ""},
        {"question": "这件衣服是什么颜色的？", "related_image": b, "answer": ""},
        {"question": "这两件有什么区别？", "related_image": f"{a},{b}", "answer": ""},
        {"question": "请识别图片中标签上的文字。", "related_image": "label_zh.png", "answer": ""},
    ], ensure_ascii=False), encoding="utf-8")  # fmt: skip
    first = build_agent(settings, images=[shop], annotations=catalogue.csv)
    run_eval(first, query, tmp_path / "one.json", images=[shop], progress=False)
    assert first.ctx.cache.misses > 0
    second = build_agent(settings, images=[shop], annotations=catalogue.csv)  # a new run, same home
    run = run_eval(second, query, tmp_path / "two.json", images=[shop], progress=False)
    assert run.summary.failed == []
    assert second.ctx.cache.misses == 0 and second.ctx.cache.hits > 0  # OCR, colours, captions, VQA


def test_an_indexed_catalogue_is_not_rehashed_at_start_up(e2e_settings, shop, catalogue, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import vlagent.index.build as index_build

    settings = e2e_settings.model_copy(update={"home": tmp_path / "home"})
    calls: list[str] = []
    real = index_build.index_images
    monkeypatch.setattr(index_build, "index_images", lambda source, *a, **k: calls.append(str(source.root)) or real(source, *a, **k))
    build_agent(settings, images=[shop], annotations=catalogue.csv)
    assert calls == [str(shop)]  # an empty index: built
    agent = build_agent(settings, images=[shop], annotations=catalogue.csv)
    assert calls == [str(shop)]  # complete already: no file read again
    assert agent.invoke(f"请匹配到与 {catalogue.titles[catalogue.names[0]]} 最相关的图片。").images


def test_recommend_questions_answer_with_the_list_and_why(agent, catalogue) -> None:  # type: ignore[no-untyped-def]
    from vlagent.agent.types import Classification, ClassifierResult

    liked = catalogue.names[0]
    original = agent.parts.classifier
    agent.parts.classifier = lambda q, images, llm: ClassifierResult(
        classification=Classification(type="recommend", language="zh"), source="rules"
    )
    try:
        answer = agent.invoke("推荐几款类似的", images=[liked])
    finally:
        agent.parts.classifier = original
    assert answer.type == "recommend" and answer.ok
    assert answer.images and liked not in answer.image_ids  # a liked item never comes back
    assert [t.name for t in answer.trace if t.name == "recommend" and t.ok] == ["recommend"]
    assert "answer_llm" not in [t.name for t in answer.trace]  # the ranked list, as it is
    first = answer.images[0]
    assert first.image in answer.text and catalogue.titles[first.image] in answer.text  # each item says why


def test_title_search_and_recommend_share_one_title_index(catalogue, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from vlagent.index import titles as retrieval

    built: list[int] = []
    original = retrieval.TitleIndex.__init__

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(retrieval.TitleIndex, "__init__", counting)
    settings = Settings(
        home=tmp_path, device="cpu", profile="offline", clip_model=str(tmp_path / "no-clip"),
        caption_backend="none", vqa_backend="none", llm_backend="none",
    )  # fmt: skip
    agent = build_agent(settings, images=[catalogue.folder], annotations=catalogue.csv)
    assert {"title_search", "recommend"} <= set(agent.tool_names)
    assert len(built) == 1  # the titles are embedded once per agent
