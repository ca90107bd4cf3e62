"""``vlagent analyze``: the learned classifier, TF-IDF/jieba + KMeans and the LLM classifier side by side."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from typer.testing import CliRunner

from vlagent.analysis.agreement import adjusted_rand
from vlagent.analysis.analyze import analyze_questions
from vlagent.analysis.questions import load_questions
from vlagent.analysis.report import write_report
from vlagent.cli.app import app

SUITES = Path(__file__).resolve().parents[1] / "evals" / "suites"
SAMPLE = SUITES / "sample" / "query.json"
CLASSIFIER = SUITES / "classifier" / "questions.jsonl"


class CountingLLM(FakeListChatModel):
    """Answers each question with its gold type (prompted JSON: the fake has no tool calling),
    so the classifier's checks accept it; counts its calls; raises KeyboardInterrupt at call
    ``stop_at`` (an interrupted run)."""

    calls: int = 0
    stop_at: int | None = None
    gold: dict[str, str] = {}

    def _call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        self.calls += 1
        if self.stop_at is not None and self.calls == self.stop_at:
            raise KeyboardInterrupt
        text = str(messages[-1].content).splitlines()[-1]  # the question comes last
        question = text.removeprefix("Q: ").rsplit(" images:", 1)[0].strip()
        return json.dumps({"type": self.gold[question], "query": ""})


def chat_llm(**kw: Any) -> CountingLLM:
    gold = {q.question.strip(): q.gold or "chat" for q in load_questions(SAMPLE)}
    return CountingLLM(responses=["unused"], gold=gold, **kw)


def _beyond_chance(clusters: list[int], gold: list[str], trials: int = 50) -> tuple[float, float]:
    actual = adjusted_rand([str(c) for c in clusters], gold)
    rng = random.Random(0)
    shuffled = []
    for _ in range(trials):
        perm = gold[:]
        rng.shuffle(perm)
        shuffled.append(adjusted_rand([str(c) for c in clusters], perm))
    return actual, max(shuffled)


@pytest.mark.parametrize("path, floor", [(SAMPLE, 0.3), (CLASSIFIER, 0.1)], ids=["sample", "classifier"])
def test_clusters_agree_with_the_gold_types_beyond_chance(path: Path, floor: float) -> None:
    questions = load_questions(path)
    assert all(q.gold for q in questions)
    report = analyze_questions(questions, str(path))
    gold = [q.gold or "" for q in questions]
    actual, best_shuffled = _beyond_chance(report.clustering.labels, gold)
    print(f"{path.name}: k={report.clustering.k} ARI clusters vs gold {actual:.3f} (shuffled gold: max {best_shuffled:.3f}); rules vs gold {report.ari['learned vs gold']:.3f}")
    assert report.ari["clusters vs gold"] == pytest.approx(actual, abs=1e-4)
    assert actual > floor and actual > best_shuffled + 0.1
    assert report.clustering.k == max(report.clustering.silhouettes, key=lambda k: report.clustering.silhouettes[k])
    for cluster in report.clustering.clusters:
        assert cluster.top_terms and 1 <= len(cluster.examples) <= 3
        assert sum(1 for label in report.clustering.labels if label == cluster.id) == cluster.size


def test_the_shipped_suite_gets_three_reports(tmp_path: Path) -> None:
    questions = load_questions(SAMPLE)
    llm = chat_llm()
    report = analyze_questions(questions, str(SAMPLE), llm=llm, llm_id="fake", cache_path=tmp_path / "llm_labels.jsonl")
    paths = write_report(report, tmp_path)
    data = json.loads(paths["json"].read_text("utf-8"))
    assert set(data["counts"]) == {"learned", "clusters", "llm", "gold"}
    assert {"learned vs gold", "clusters vs gold", "llm vs gold", "learned vs llm"} <= set(data["ari"])
    assert data["llm"]["status"] == "used" and data["llm"]["answered"] == len(questions) == llm.calls
    assert data["counts"]["llm"] == data["counts"]["gold"]  # what the fake said reached the column
    assert data["ari"]["llm vs gold"] == 1.0
    assert {(t["rows"], t["columns"]) for t in data["crosstabs"]} >= {("clusters", "gold"), ("gold", "learned"), ("gold", "llm")}
    md = paths["md"].read_text("utf-8")
    assert "adjusted Rand" in md and "clusters × gold" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_llm_column_is_cached_and_resumes(tmp_path: Path) -> None:
    questions = load_questions(SAMPLE)[:10]
    cache = tmp_path / "llm_labels.jsonl"
    with pytest.raises(KeyboardInterrupt):
        analyze_questions(questions, "x", llm=chat_llm(stop_at=5), llm_id="fake", cache_path=cache)
    assert len(cache.read_text("utf-8").splitlines()) == 4
    llm = chat_llm()
    report = analyze_questions(questions, "x", llm=llm, llm_id="fake", cache_path=cache)
    assert llm.calls == 6 and report.llm.cached == 4
    again = chat_llm()
    report = analyze_questions(questions, "x", llm=again, llm_id="fake", cache_path=cache)
    assert again.calls == 0 and report.llm.cached == 10
    other = chat_llm()  # another LLM is another cache key
    analyze_questions(questions, "x", llm=other, llm_id="another", cache_path=cache)
    assert other.calls == 10


def test_cli_writes_the_reports_and_bad_input_is_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["analyze", str(SAMPLE), "--out", str(tmp_path), "--no-llm"])
    assert result.exit_code == 0, result.output
    assert "ARI" in result.output and "skipped: --no-llm" in result.output
    assert {p.name for p in tmp_path.iterdir()} >= {"report.json", "report.md", "report.png"}
    bad = tmp_path / "bad.json"
    bad.write_text("[{", encoding="utf-8")
    result = runner.invoke(app, ["analyze", str(bad), "--no-llm"])
    assert result.exit_code == 2
    assert "malformed JSON" in result.output and "Traceback" not in result.output
