"""The rule classifier runs in linear time on any input (issue 21): the linear searches find
what the plain regexes find, and 200,000 characters of any text classify in bounded CPU time.

The figures (seconds by length, before and after) are ``benchmarks/rules_bench.py``'s. The
bound here is CPU time of this thread (other processes on a loaded machine do not count) with
a margin no machine reaches: the old rules took 16 s on one of these texts at 20,000
characters, more than 30 s on another at 5,000, and hours at 200,000; now each is a few
tenths of a second.
"""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

import pytest

from vlagent.agent import rules
from vlagent.agent.classify import LLMDecision, _reconcile, classify
from vlagent.agent.rules import Keywords, TitlePattern, classify_rules, fold_space
from vlagent.agent.types import QuestionType

ROOT = Path(__file__).resolve().parents[1]
N = 200_000
CPU_BOUND_S = 1.0


def repeat(unit: str, n: int = N) -> str:
    return (unit * (n // len(unit) + 1))[:n]


LONG_TEXTS = {
    "zh question": repeat("这件衣服是什么颜色的？面料是纯棉的吗？"),
    "en question": repeat("What colour is this shirt and what does the label say? "),
    "zh lines": repeat("这件衣服是什么颜色的？\n面料是纯棉的吗？\n"),
    "zh title search": "请匹配到与 " + repeat("夏季新款雪纺碎花连衣裙女中长款 ", N - 14) + " 最相关的图片。",
    "和 × n (a title word, nothing closes it)": repeat("和"),
    "找 × n": repeat("找"),
    "找 and a tail on every other line": repeat("找\n的图\n"),
    "与 ... 最相关的图 on every line": repeat("与x最相关的图片\n"),
    "find + spaces": "find" + " " * (N - 5) + "x",
    "image names": " ".join(f"p{i}.jpg" for i in range(N // 6 + 1))[:N],
    "mixed": repeat("请找一下和 red dress 最像的有没有的图片 which image shows 推荐 我喜欢\t \n "),
}


@pytest.mark.parametrize("kind", sorted(LONG_TEXTS))
def test_200000_characters_of_any_text_classify_in_bounded_time(kind: str) -> None:
    text = LONG_TEXTS[kind]
    for images in ([], ["a.jpg", "b.jpg"]):
        started = time.thread_time()
        result = classify_rules(text, images)
        assert time.thread_time() - started < CPU_BOUND_S, f"{kind}: {time.thread_time() - started:.2f} s of CPU"
        assert result.type in QuestionType
    started = time.thread_time()  # what classify() adds with no LLM, and the checks on an LLM's answer
    rules_result = classify(text, [], None).classification
    _reconcile(text, LLMDecision(type=QuestionType.retrieve, query=""), rules_result, [])
    _reconcile(text, LLMDecision(type=QuestionType.compare, query=""), rules_result, ["a.jpg"])
    assert time.thread_time() - started < 3 * CPU_BOUND_S


def test_fold_space_keeps_one_line_break_or_one_space_per_run() -> None:
    assert fold_space("  这件\t\t衣服 \n\n  是什么 \r\n 颜色\u3000\u3000的？ ") == "这件 衣服\n是什么\n颜色 的？"
    assert fold_space("a\rb") == "a b"  # '.' matches \r: no line break


#: words that make the title searches start, end, or almost end, and line breaks
_FRAGMENTS = ["和", "与", "跟", "找", "搜", "找出", "匹配到", "有没有", "我想看", "给我看看", "的图片", "最相关的图片", "最相似的图",
              "相关的商品图", "的图", "的照片", "在哪", "有吗", "红色", "连衣裙", "x", "a.jpg", "？", "。", " ", "\n", "\n", "图片", "最", "的",
              "最为贴切的一张图片", "相符的图像"]  # fmt: skip


def _random_texts(count: int, seed: int = 21) -> list[str]:
    rng = random.Random(seed)
    return [fold_space("".join(rng.choice(_FRAGMENTS) for _ in range(rng.randint(1, 16)))) for _ in range(count)]


def test_title_patterns_find_what_re_search_finds() -> None:
    """Every TitlePattern gives re.search's match (span and title) on folded text."""
    patterns = [p for p in rules._RETRIEVE_PATTERNS if isinstance(p, TitlePattern)]
    assert len(patterns) == 6
    texts = _random_texts(4000) + ["请匹配到与 夏季新款雪纺碎花连衣裙 最相关的图片。", "请匹配到与\n红色连衣裙\n最相关的图片", "找与\n的图a.jpg在哪搜有没有最相关的图片"]
    for text in texts:
        for pattern in patterns:
            want, got = pattern.pattern.search(text), pattern.search(text)
            assert (want and (want.span(), want.group("q"))) == (got and (got.span(), got.group("q"))), (pattern.pattern.pattern, text)


def test_keyword_tables_answer_as_one_alternation() -> None:
    tables = {name: value for name, value in vars(rules).items() if isinstance(value, Keywords)}
    assert len(tables) >= 10
    suite = ROOT / "evals" / "suites" / "classifier" / "questions.jsonl"
    texts = [json.loads(line)["question"] for line in suite.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(5)
    texts += ["".join(rng.choice(texts)[: rng.randint(1, 12)] for _ in range(3)) for _ in range(500)]
    texts += ["What does the LOGO say?", "I like red but I don't like pink", "推荐几款类似的", "这件 shirt 是什么颜色", "上面写的什么？"]
    for name, table in tables.items():
        whole = re.compile(table.pattern, re.IGNORECASE)
        for text in texts:
            assert bool(table.search(text)) == bool(whole.search(text)), (name, text)


@pytest.mark.parametrize(
    ("question", "images", "qtype", "query"),
    [
        ("哪张图片是白色帆布鞋？\nThanks, that's all.", [], "retrieve", "白色帆布鞋"),  # a title ends at its line's end
        ("请匹配到与\n红色连衣裙\n最相关的图片", [], "retrieve", "红色连衣裙"),  # the words around it may be on other lines
        ("请匹配到与   夏季新款  碎花连衣裙   最相关的图片。", [], "retrieve", "夏季新款 碎花连衣裙"),  # spaces folded
        ("这件衣服\n是什么颜色的？", ["a.jpg"], "vqa", ""),
    ],
)
def test_folded_text_classifies_as_before(question: str, images: list[str], qtype: str, query: str) -> None:
    result = classify_rules(question, images)
    assert (result.type.value, result.query) == (qtype, query)


def test_merge_images_keeps_the_first_of_each_name_in_order() -> None:
    assert rules.merge_images(["b.jpg", "a.jpg"], "比较 a.jpg 和 c.png 还有 b.jpg、c.png") == ["b.jpg", "a.jpg", "c.png"]
