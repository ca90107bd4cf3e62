"""Metrics against hand-checked small cases, and gold loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sacrebleu

from vlagent.data.queries import read_queries
from vlagent.errors import DataError
from vlagent.evals.journal import JournalEntry, RankedImage
from vlagent.evals.metrics import (
    Gold,
    corpus_bleu,
    exact_match,
    gold_contained,
    load_gold,
    normalize,
    retrieval_scores,
    rouge_l,
    score_run,
    sentence_bleu,
    tokenize,
)


def test_tokenize_splits_chinese_into_words_and_lowercases_english() -> None:
    assert tokenize("一件红色的连衣裙") == ["一件", "红色", "的", "连衣裙"]
    assert tokenize("MADE in China") == ["made", "in", "china"]


def test_bleu_of_identical_text_is_100_and_of_disjoint_text_is_0() -> None:
    assert sentence_bleu("一件红色的无袖连衣裙", ["一件红色的无袖连衣裙"]) == pytest.approx(100.0)
    assert sentence_bleu("黑色", ["一件红色的无袖连衣裙"]) == pytest.approx(0.0)


def test_bleu_is_sacrebleu_on_jieba_tokens() -> None:
    hyp, ref = "这是一件红色的连衣裙", "一件红色的无袖连衣裙"
    expected = sacrebleu.sentence_bleu(
        "这是 一件 红色 的 连衣裙", ["一件 红色 的 无袖 连衣裙"], tokenize="none"
    ).score
    assert sentence_bleu(hyp, [ref]) == pytest.approx(expected)
    # by hand: 4/5 unigrams, 2/4 bigrams, 1/3 trigrams, 0/2 4-grams (sacrebleu's exp smoothing
    # makes that 1/(2·2)), equal lengths so BP = 1: 100 · (0.8 · 0.5 · 1/3 · 0.25) ** 0.25
    assert expected == pytest.approx(100 * (0.8 * 0.5 / 3 * 0.25) ** 0.25)


def test_corpus_bleu_accepts_a_different_number_of_references_per_item() -> None:
    score = corpus_bleu(["一件 红色 的 无袖 连衣裙", "纯棉"], [["一件红色的无袖连衣裙"], ["棉", "纯棉"]])
    assert score == pytest.approx(100.0)


def test_rouge_l_by_hand() -> None:
    # prediction 这是|一件|红色|的|裙子 (5), reference 一件|红色|的|连衣裙 (4): LCS 3
    p, r = 3 / 5, 3 / 4
    assert rouge_l("这是一件红色的裙子", ["一件红色的连衣裙"]) == pytest.approx(2 * p * r / (p + r))
    # the best reference counts
    assert rouge_l("纯棉", ["棉麻", "纯棉"]) == pytest.approx(1.0)
    # English is scored too (rouge-score's default tokenizer would keep it, and drop Chinese)
    assert rouge_l("Made in China", ["made in china"]) == pytest.approx(1.0)


def test_short_answer_normalisation() -> None:
    assert normalize(" 红色。") == "红色"
    assert normalize("ＸＬ") == "xl"
    assert exact_match("红色。", ["红色", "红"]) == 1.0
    assert exact_match("是红色的", ["红色"]) == 0.0
    assert gold_contained("这件连衣裙是红色的。", ["红色"]) == 1.0
    assert gold_contained("尺码是 xl", ["XL"]) == 1.0
    assert gold_contained("蓝色", ["红色", "红"]) == 0.0
    assert gold_contained("anything", [""]) == 0.0


def test_retrieval_scores_by_hand() -> None:
    ranked = [f"image/{n}.jpg" for n in "abcdefghijkl"]
    assert retrieval_scores(ranked, ["a.jpg"]) == {"hit@1": 1.0, "recall@5": 1.0, "recall@10": 1.0, "mrr": 1.0}
    assert retrieval_scores(ranked, ["b.jpg"]) == {"hit@1": 0.0, "recall@5": 1.0, "recall@10": 1.0, "mrr": 0.5}
    assert retrieval_scores(ranked, ["g.jpg"]) == {"hit@1": 0.0, "recall@5": 0.0, "recall@10": 1.0, "mrr": pytest.approx(1 / 7)}
    assert retrieval_scores(ranked, ["z.jpg"]) == {"hit@1": 0.0, "recall@5": 0.0, "recall@10": 0.0, "mrr": 0.0}
    assert retrieval_scores([], ["a.jpg"])["mrr"] == 0.0


def _entry(i: int, type_: str | None, text: str = "", ranked: list[str] | None = None, ok: bool = True) -> JournalEntry:
    return JournalEntry(
        index=i, key="k", status="ok" if ok else "failed", type=type_, text=text,
        ranked=[RankedImage(image=r, score=0.0) for r in ranked or []], error=None if ok else "boom",
    )  # fmt: skip


def test_score_run_by_type_confusion_and_failures() -> None:
    entries = {
        0: _entry(0, "retrieve", ranked=["a.jpg", "b.jpg"]),  # gold a: rank 1
        1: _entry(1, "retrieve", ranked=["a.jpg", "b.jpg"]),  # gold b: rank 2
        2: _entry(2, "vqa", text="红色"),
        3: _entry(3, "ocr", text="蓝色"),  # misclassified (gold vqa) and wrong
        4: _entry(4, None, ok=False),  # failed: counts as wrong, predicted type "none"
        5: _entry(5, "chat", text="你好"),
    }
    golds = {
        0: Gold(type="retrieve", images=["a.jpg"]),
        1: Gold(type="retrieve", images=["b.jpg"]),
        2: Gold(type="vqa", answers=["红色"]),
        3: Gold(type="vqa", answers=["红色"]),
        4: Gold(type="ocr", answers=["XL"]),
        5: Gold(type="chat"),
        6: Gold(type="chat"),  # no entry (invalid item): not scored
    }
    m = score_run(entries, golds)
    assert m.scored == 6
    assert m.by_type["retrieve"].scores["hit@1"] == 0.5
    assert m.by_type["retrieve"].scores["mrr"] == pytest.approx(0.75)
    assert m.by_type["retrieve"].scores["recall@5"] == 1.0
    assert m.by_type["vqa"].n == 2
    assert m.by_type["vqa"].scores["exact_match"] == 0.5
    assert m.by_type["vqa"].scores["type_correct"] == 0.5
    assert m.by_type["ocr"].scores["exact_match"] == 0.0
    assert m.by_type["chat"].scores == {"type_correct": 1.0}
    assert m.classification_accuracy == pytest.approx(4 / 6)
    assert m.classification_by_type == {"retrieve": 1.0, "vqa": 0.5, "ocr": 0.0, "chat": 1.0}
    labels = m.confusion_labels
    assert labels[-1] == "none"
    cell = lambda g, p: m.confusion[labels.index(g)][labels.index(p)]  # noqa: E731
    assert cell("retrieve", "retrieve") == 2
    assert cell("vqa", "ocr") == 1 and cell("vqa", "vqa") == 1
    assert cell("ocr", "none") == 1
    assert sum(map(sum, m.confusion)) == 6
    # the per-type BLEU is sacrebleu's corpus BLEU over the type's items
    assert m.by_type["vqa"].scores["bleu"] == pytest.approx(corpus_bleu(["红色", "蓝色"], [["红色"], ["红色"]]))


def _queries(tmp_path: Path, items: list[dict]) -> Path:
    path = tmp_path / "query.json"
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    return path


ITEMS = [
    {"question": "找图", "related_image": "", "answer": "", "gold_type": "retrieve", "gold_image": "a.jpg"},
    {"question": "颜色？", "related_image": "a.jpg", "answer": "", "gold_answer": ["红色", "红"]},
    {"question": "你好", "related_image": "", "answer": ""},
]


def test_items_with_a_gold_split_are_also_scored_per_split() -> None:
    entries = {0: _entry(0, "compare", text="第一张是帽子"), 1: _entry(1, "compare", text="都一样"), 2: _entry(2, "compare", text="第二张")}
    golds = {
        0: Gold(type="compare", answers=["第一张"], split="tune"),
        1: Gold(type="compare", answers=["第二张"], split="holdout"),
        2: Gold(type="compare", answers=["第二张"]),
    }
    m = score_run(entries, golds)
    assert m.by_type["compare"].scores["contains"] == pytest.approx(2 / 3)
    assert m.by_split["tune"]["compare"].scores["contains"] == 1.0
    assert m.by_split["holdout"]["compare"].n == 1 and m.by_split["holdout"]["compare"].scores["contains"] == 0.0
    assert set(m.by_split) == {"tune", "holdout"}


def test_gold_from_the_query_fields(tmp_path: Path) -> None:
    golds = load_gold(read_queries(_queries(tmp_path, ITEMS)))
    assert golds[0] == Gold(type="retrieve", images=["a.jpg"])
    assert golds[1] == Gold(answers=["红色", "红"])
    assert 2 not in golds


def test_gold_file_as_a_list_a_dict_or_a_filled_competition_file(tmp_path: Path) -> None:
    queries = read_queries(_queries(tmp_path, ITEMS))
    filled = tmp_path / "reference.json"
    filled.write_text(json.dumps([
        {"question": "找图", "related_image": "b.jpg", "answer": ""},
        {"question": "颜色？", "related_image": "a.jpg", "answer": "蓝色"},
        {"question": "你好", "related_image": "", "answer": ""},
    ], ensure_ascii=False), encoding="utf-8")  # fmt: skip
    golds = load_gold(queries, filled)
    assert golds[0].images == ["b.jpg"] and golds[0].type == "retrieve"  # file overrides; type kept
    assert golds[1].answers == ["蓝色"]
    by_index = tmp_path / "gold.json"
    by_index.write_text(json.dumps({"2": {"gold_type": "chat"}}), encoding="utf-8")
    assert load_gold(queries, by_index)[2] == Gold(type="chat")


def test_bad_gold_files_are_one_clear_error(tmp_path: Path) -> None:
    queries = read_queries(_queries(tmp_path, ITEMS))
    short = tmp_path / "short.json"
    short.write_text("[{}]", encoding="utf-8")
    with pytest.raises(DataError, match="1 gold items for 3 questions"):
        load_gold(queries, short)
    bad_type = tmp_path / "bad.json"
    bad_type.write_text('{"1": {"gold_type": "poem"}}', encoding="utf-8")
    with pytest.raises(DataError, match="item 1: gold_type 'poem'"):
        load_gold(queries, bad_type)
    broken = tmp_path / "broken.json"
    broken.write_text("[", encoding="utf-8")
    with pytest.raises(DataError, match="not a valid JSON gold file"):
        load_gold(queries, broken)
    with pytest.raises(DataError, match="no such gold file"):
        load_gold(queries, tmp_path / "nope.json")
