"""The classifier's dynamic few-shot examples, its reconcile guards, the recommend type, the
prompt's image names (base names only) and the LLM reply cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult

from vlagent.agent.classify import build_messages, classify, describe_images
from vlagent.agent.fewshot import Example, FewShotSelector, default_selector, load_pool, normalise
from vlagent.agent.rules import classify_rules
from vlagent.agent.types import QuestionType
from vlagent.cache import DiskCache
from vlagent.evals import classifier_eval as ce


class RecordingModel(FakeListChatModel):
    """Answers from a list and keeps every prompt it was sent."""

    prompts: list[list[BaseMessage]] = []

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.prompts.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def recording(*answers: str) -> RecordingModel:
    return RecordingModel(responses=list(answers), prompts=[])


def bag_of_chars(texts: list[str]) -> np.ndarray:
    """A deterministic stand-in embedding: normalised character counts (hashed into 64 bins)."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for row, text in enumerate(texts):
        for ch in text:
            out[row, ord(ch) % 64] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


POOL = [
    Example(question="吊牌上写的是什么？", images=["a.jpg"], type=QuestionType.ocr),
    Example(question="吊牌上写的是什么 ?", images=["b.jpg"], type=QuestionType.ocr),  # same text, other spacing
    Example(question="这件衬衫是什么颜色的？", images=["a.jpg"], type=QuestionType.vqa),
    Example(question="请描述这张图片。", images=["a.jpg"], type=QuestionType.describe),
    Example(question="吊牌上的价格是多少？", images=["a.jpg"], type=QuestionType.ocr, split="holdout"),
]


# ----------------------------------------------------------------------------------------
# the example selector
# ----------------------------------------------------------------------------------------
def test_selector_never_returns_the_question_itself_or_holdout() -> None:
    selector = FewShotSelector(POOL, bag_of_chars)
    assert all(e.split != "holdout" for e in selector.pool)
    picked = selector.select("吊牌上写的是什么？", k=3)
    assert [normalise(e.question) for e in picked].count(normalise("吊牌上写的是什么？")) == 0
    assert len(picked) == 2 and all(e.split == "main" for e in picked)
    assert selector.select("吊牌上的价格是多少？", k=1)[0].split == "main"  # the holdout twin is not in the pool
    assert selector.select("anything", k=0) == []


def test_shipped_pool_excludes_holdout_and_nearest_neighbours_are_sensible() -> None:
    pool = load_pool()
    suite = ce.load_suite()
    assert len(pool) == sum(i.split == "main" for i in suite)
    selector = default_selector()
    assert selector is not None
    holdout = {normalise(i.question) for i in suite if i.split == "holdout"}
    for item in suite[:: max(1, len(suite) // 25)]:
        picked = selector.select(item.question, 4)
        assert len(picked) == 4
        keys = {normalise(e.question) for e in picked}
        assert normalise(item.question) not in keys
        assert not keys & holdout
    # multilingual-e5 finds a labelled question of the same intent in the other language
    assert any(e.type is QuestionType.ocr for e in selector.select("What does the tag say?", 4))


def test_pool_embeddings_are_cached_on_disk(tmp_path: Path) -> None:
    calls: list[int] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return bag_of_chars(texts)

    first = FewShotSelector.from_suite(cache_dir=tmp_path, embed=embed)
    second = FewShotSelector.from_suite(cache_dir=tmp_path, embed=embed)
    assert calls == [len(first.pool)]  # the second selector read the pool's vectors from disk
    assert np.allclose(first.vectors, second.vectors)
    assert len(list(tmp_path.glob("fewshot-*.npy"))) == 1


# ----------------------------------------------------------------------------------------
# the prompt
# ----------------------------------------------------------------------------------------
def test_prompt_carries_examples_and_image_base_names_only() -> None:
    selector = FewShotSelector(POOL, bag_of_chars)
    llm = recording('{"type": "ocr", "query": ""}')
    r = classify("吊牌上写的什么字？", ["/srv/data/catalogue/x1.jpg"], llm, fewshot=selector, k=2)
    assert r.source == "llm" and r.classification.type is QuestionType.ocr
    user = str(llm.prompts[0][-1].content)
    assert "x1.jpg" in user and "/srv" not in user and "catalogue" not in user
    assert user.count("-> ") == 2 and "Similar labelled questions" in user
    assert user.rstrip().endswith("images: 1 (x1.jpg)")


def test_prompt_does_not_depend_on_the_checkout_path() -> None:
    a = build_messages("这两件哪件更好？", ["/home/a/wt1/img/p.jpg", "C:\\data\\q.png"])
    b = build_messages("这两件哪件更好？", ["/tmp/other/p.jpg", "q.png"])
    assert [m.content for m in a] == [m.content for m in b]
    assert describe_images([]) == "none"
    assert describe_images(["x/y/z.jpg"]) == "1 (z.jpg)"


def test_fewshot_can_be_switched_off() -> None:
    llm = recording('{"type": "chat", "query": ""}')
    classify("你好", [], llm, fewshot=False)
    assert "Similar labelled questions" not in str(llm.prompts[0][-1].content)


# ----------------------------------------------------------------------------------------
# the reconcile guards
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("said", ["retrieve", "chat"])
def test_image_with_retrieve_or_chat_and_no_such_wording_goes_to_the_rules(said: str) -> None:
    r = classify("Is the dress sleeveless?", ["a.jpg"], recording(f'{{"type": "{said}", "query": ""}}'), fewshot=False)
    assert (r.source, r.classification.type) == ("rules", QuestionType.vqa)
    assert r.error is not None and said in r.error and "\n" not in r.error


def test_image_with_real_retrieval_or_chat_wording_keeps_the_llm() -> None:
    similar = classify("帮我找和这张图相似的商品图片", ["a.jpg"], recording('{"type": "retrieve"}'), fewshot=False)
    assert (similar.source, similar.classification.type) == ("llm", QuestionType.retrieve)
    refund = classify("这件衣服可以退换吗？", ["a.jpg"], recording('{"type": "chat"}'), fewshot=False)
    assert (refund.source, refund.classification.type) == ("llm", QuestionType.chat)


@pytest.mark.parametrize("said", ["retrieve", "vqa", "describe"])
def test_two_images_with_comparison_wording_are_compare(said: str) -> None:
    r = classify("这两款相机哪个更适合旅行？", ["a.jpg", "b.jpg"], recording(f'{{"type": "{said}"}}'), fewshot=False)
    assert r.classification.type is QuestionType.compare
    assert r.source == "rules" and r.error is not None


def test_compare_guard_leaves_recommend_and_single_images_alone() -> None:
    rec = classify("根据我喜欢的这两件，推荐几件新的", ["a.jpg", "b.jpg"], recording('{"type": "recommend"}'), fewshot=False)
    assert (rec.source, rec.classification.type) == ("llm", QuestionType.recommend)
    one = classify("哪个颜色更好看？", ["a.jpg"], recording('{"type": "vqa"}'), fewshot=False)
    assert (one.source, one.classification.type) == ("llm", QuestionType.vqa)


# ----------------------------------------------------------------------------------------
# recommend
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("question", "images", "qtype"),
    [
        ("推荐几款类似的", ["a.jpg"], "recommend"),
        ("根据这张图推荐一款相配的地毯", ["a.jpg"], "recommend"),
        ("Show me more like this.", ["a.jpg"], "recommend"),
        ("I like the first one and dislike the second; recommend more.", ["a.jpg", "b.jpg"], "recommend"),
        ("推荐一条适合夏天穿的连衣裙", [], "recommend"),
        # not recommend: image search, title search with the word in the title, shop service, advice
        ("帮我找和这张图相似的商品图片", ["a.jpg"], "retrieve"),
        ("请匹配到与 店长推荐款碎花连衣裙 最相关的图片。", [], "retrieve"),
        ("有尺码推荐吗？", [], "chat"),
        ("这条裤子是什么颜色，适合配什么鞋？", ["a.jpg"], "vqa"),
    ],
)
def test_rules_recommend(question: str, images: list[str], qtype: str) -> None:
    assert classify_rules(question, images).type.value == qtype


def test_llm_recommend_is_kept_and_carries_no_query() -> None:
    r = classify("推荐几款类似的", ["a.jpg"], recording('{"type": "recommend", "query": "类似款"}'), fewshot=False)
    assert (r.source, r.classification.type, r.classification.query) == ("llm", QuestionType.recommend, "")


# ----------------------------------------------------------------------------------------
# the reply cache (the classifier eval re-runs unchanged prompts for free)
# ----------------------------------------------------------------------------------------
def test_reply_cache_skips_the_llm_for_a_prompt_it_has_seen(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "replies.sqlite")
    llm = recording('{"type": "vqa", "query": ""}', '{"type": "chat", "query": ""}')
    first = classify("这件衬衫是什么颜色的？", ["a.jpg"], llm, fewshot=False, reply_cache=cache)
    again = classify("这件衬衫是什么颜色的？", ["/other/dir/a.jpg"], llm, fewshot=False, reply_cache=cache)
    assert len(llm.prompts) == 1 and len(cache) == 1
    assert first.classification.type is again.classification.type is QuestionType.vqa
    other = classify("你好", [], llm, fewshot=False, reply_cache=cache)
    assert len(llm.prompts) == 2 and other.classification.type is QuestionType.chat


def test_eval_cli_filters_split_and_types(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    out = tmp_path / "r.json"
    result = CliRunner().invoke(
        ce.app, ["--llm-backend", "none", "--split", "holdout", "--types", "recommend,compare", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(out.read_text("utf-8"))["rules"]
    suite = ce.load_suite()
    assert data["n"] == sum(i.split == "holdout" and i.type.value in ("recommend", "compare") for i in suite)
    bad = CliRunner().invoke(ce.app, ["--llm-backend", "none", "--types", "shopping"])
    assert bad.exit_code != 0 and "shopping" in bad.output


# guards 7-15: the offline LLM's measured slips, refereed by the rules
@pytest.mark.parametrize(
    ("question", "images", "said", "expected"),
    [
        ("吊牌上标的尺码是M还是L？", ["a.jpg"], "vqa", QuestionType.ocr),  # label reading → ocr
        ("吊牌上写的是什么？", ["a.jpg"], "describe", QuestionType.ocr),
        ("Is the dress sleeveless?", ["a.jpg"], "compare", QuestionType.vqa),  # one image, no compare words
        ("下雨天穿什么鞋比较好？", [], "retrieve", QuestionType.chat),  # advice, not a title
        ("买错尺码了能换吗？", [], "retrieve", QuestionType.chat),
        ("推荐一条适合夏天穿的连衣裙", [], "retrieve", QuestionType.recommend),  # recommendation wording
        # guards 13-14: the match rule decides its type both ways
        ("这是不是一双白色运动鞋？", ["a.jpg"], "vqa", QuestionType.match),
        ("Is this a picture of a grey baseball cap?", ["a.jpg"], "vqa", QuestionType.match),
        ("这件衣服可以退换吗？", [], "match", QuestionType.chat),
        ("哪张图片是白色帆布鞋？", [], "match", QuestionType.retrieve),
        # guard 15: the look of a label, or of the item, is not reading
        ("吊牌是什么颜色的？", ["a.jpg"], "ocr", QuestionType.vqa),
        ("这个手提包是真皮的吗？", ["a.jpg"], "ocr", QuestionType.vqa),
    ],
)
def test_guards_for_the_offline_llms_slips(question: str, images: list[str], said: str, expected: QuestionType) -> None:
    r = classify(question, images, recording(f'{{"type": "{said}", "query": "x"}}'), fewshot=False)
    assert (r.source, r.classification.type) == ("rules", expected)
    assert r.error is not None and f"llm said {said}" in r.error


@pytest.mark.parametrize(
    ("question", "images", "said"),
    [
        ("吊牌是什么颜色的？", ["a.jpg"], "vqa"),  # a visual attribute of the label: the rules say vqa too
        ("白色帆布鞋", [], "retrieve"),  # a bare title is a search, not a question
        ("Compare these two.", ["a.jpg", "b.jpg"], "compare"),
        ("哪张图片是白色帆布鞋？", [], "retrieve"),
    ],
)
def test_guards_leave_sound_llm_answers_alone(question: str, images: list[str], said: str) -> None:
    r = classify(question, images, recording(f'{{"type": "{said}", "query": ""}}'), fewshot=False)
    assert (r.source, r.classification.type.value) == ("llm", said)
