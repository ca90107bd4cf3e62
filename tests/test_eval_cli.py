"""`vlagent eval` through typer's CliRunner with a fake agent; the report files; the sample suite."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval_fakes import FakeAgent
from vlagent.cli.app import app as main_app
from vlagent.cli.app import main
from vlagent.cli import eval_cmd as eval_cli
from vlagent.evals.harness import run_eval
from vlagent.evals.journal import journal_path
from vlagent.evals.metrics import load_gold, score_run
from vlagent.evals.report import write_report
from vlagent.data.queries import read_queries

SAMPLE = Path(__file__).resolve().parents[1] / "evals" / "suites" / "sample"
runner = CliRunner()


class SampleAgent(FakeAgent):
    """Fake answers for the sample suite; its retrieval is an oracle (the gold image first)."""

    def __init__(self, **kw) -> None:  # type: ignore[no-untyped-def]
        names = sorted(p.name for p in (SAMPLE / "images").iterdir())
        super().__init__(catalogue=names, **kw)
        items = json.loads((SAMPLE / "query.json").read_text(encoding="utf-8"))
        self.oracle = {i["question"]: i["gold_image"] for i in items if "gold_image" in i}

    def invoke(self, question, config=None):  # type: ignore[no-untyped-def]
        answer = super().invoke(question, config)
        gold = self.oracle.get(question["question"])
        if gold is not None:
            answer.images.sort(key=lambda r: not r.image.endswith("/" + gold))
        return answer


class Injected(list):  # the agents the CLI made, in order
    def __init__(self) -> None:
        super().__init__()
        self.queue: list[FakeAgent] = []  # agents to hand out next (else a fresh SampleAgent)


@pytest.fixture()
def injected(monkeypatch: pytest.MonkeyPatch) -> Injected:
    made = Injected()

    def factory(images: list[Path], annotations: Path | None) -> FakeAgent:
        agent = made.queue.pop(0) if made.queue else SampleAgent()
        made.append(agent)
        return agent

    monkeypatch.setattr(eval_cli, "make_agent", factory)
    return made


def sample_args(out: Path, *extra: str) -> list[str]:
    return [
        "eval", str(SAMPLE / "query.json"), "--images", str(SAMPLE / "images"),
        "--annotations", str(SAMPLE / "train_annotation.csv"), "--out", str(out), "--no-progress", *extra,
    ]  # fmt: skip


def test_the_sample_suite_is_complete_and_valid() -> None:
    queries = read_queries(SAMPLE / "query.json")
    assert queries.problems == []
    names = {p.name for p in (SAMPLE / "images").iterdir()}
    for item in queries.items.values():
        assert set(item.images) <= names
        extra = item.extras()
        assert extra["gold_type"] in {"describe", "retrieve", "vqa", "ocr", "compare", "chat", "match"}
        if extra["gold_type"] == "retrieve":
            assert item.related_image == "" and extra["gold_image"] in names
        elif extra["gold_type"] == "compare":
            assert len(item.images) == 2
        elif extra["gold_type"] != "chat":
            assert item.images and extra["gold_answer"]
    types = {i.extras()["gold_type"] for i in queries.items.values()}
    assert types == {"describe", "retrieve", "vqa", "ocr", "compare", "chat", "match"}
    csv_bytes = (SAMPLE / "train_annotation.csv").read_bytes()
    assert csv_bytes.startswith(b"\xef\xbb\xbfimage,title\n")
    assert len(csv_bytes.decode("utf-8-sig").splitlines()) == len(names) + 1
    assert sum(p.stat().st_size for p in (SAMPLE / "images").iterdir()) < 2_000_000


def test_eval_command_on_the_sample_suite_writes_answers_and_report(injected: Injected, tmp_path: Path) -> None:
    out = tmp_path / "run" / "answers.json"
    report = tmp_path / "report"
    result = runner.invoke(main_app, sample_args(out, "--report-dir", str(report), "--workers", "2"))
    assert result.exit_code == 0, result.output
    assert "answered" in result.output and "scores by type" in result.output
    items = json.loads((SAMPLE / "query.json").read_text(encoding="utf-8"))
    got = json.loads(out.read_text(encoding="utf-8"))
    assert [g["question"] for g in got] == [i["question"] for i in items]
    assert got[5]["related_image"] == "red_dress.jpg"  # the fake ranks the named image first
    assert injected[0].n_calls == len(items)

    data = json.loads((report / "report.json").read_text(encoding="utf-8"))
    assert data["summary"]["answered"] == len(items)
    m = data["metrics"]
    assert m["by_type"]["retrieve"]["n"] == 6
    assert m["by_type"]["retrieve"]["scores"]["hit@1"] == 1.0
    assert m["by_type"]["retrieve"]["scores"]["mrr"] == 1.0
    assert len(m["confusion"]) == len(m["confusion_labels"]) and sum(map(sum, m["confusion"])) == len(items)
    assert "bleu" in m["overall"] and "rougeL" in m["overall"]
    md = (report / "report.md").read_text(encoding="utf-8")
    assert "## Scores by type" in md and "gold \\ predicted" in md and "confusion_matrix.png" in md
    assert "## Scores by split" in md and "| holdout | compare |" in md  # the sample suite's tune/holdout items
    for png in ("confusion_matrix.png", "scores_by_type.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_resume_through_the_cli(injected: Injected, tmp_path: Path) -> None:
    out = tmp_path / "answers.json"
    injected.queue.append(SampleAgent(crash_on=10))
    first = runner.invoke(main_app, sample_args(out))
    assert first.exit_code == 130
    assert "--resume" in first.output
    assert not out.exists() and journal_path(out).exists()
    second = runner.invoke(main_app, sample_args(out, "--resume"))
    assert second.exit_code == 0, second.output
    total = len(json.loads((SAMPLE / "query.json").read_text(encoding="utf-8")))
    assert injected[1].n_calls == total - 9
    reference = tmp_path / "ref.json"
    assert runner.invoke(main_app, sample_args(reference)).exit_code == 0
    assert json.loads(out.read_text(encoding="utf-8")) == json.loads(reference.read_text(encoding="utf-8"))


def test_failed_questions_give_exit_code_1_and_are_listed(injected: Injected, tmp_path: Path) -> None:
    query = tmp_path / "query.json"
    items = json.loads((SAMPLE / "query.json").read_text(encoding="utf-8"))[:4]
    items[1]["question"] = "FAIL " + items[1]["question"]
    query.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "answers.json"
    result = runner.invoke(
        main_app, ["eval", str(query), "--images", str(SAMPLE / "images"), "--out", str(out), "--no-progress",
                   "--report-dir", str(tmp_path / "r")],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "item 1: RuntimeError: scripted failure" in result.output
    assert len(json.loads(out.read_text(encoding="utf-8"))) == 4
    assert "item 1: RuntimeError" in (tmp_path / "r" / "report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"question": "a",', "malformed JSON at line 1"),
        ('{"question": "a"}', "expected a JSON list"),
    ],
)
def test_bad_query_files_end_with_one_line_and_exit_2(
    injected: Injected, tmp_path: Path, content: str, message: str
) -> None:
    query = tmp_path / "query.json"
    query.write_text(content, encoding="utf-8")
    result = runner.invoke(main_app, ["eval", str(query), "--images", str(SAMPLE / "images"), "--out", str(tmp_path / "o.json")])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert injected == []  # no agent (no model) was loaded for a bad file


def test_missing_images_folder_is_one_line(injected: Injected, tmp_path: Path) -> None:
    result = runner.invoke(
        main_app, ["eval", str(SAMPLE / "query.json"), "--images", str(tmp_path / "nope"), "--out", str(tmp_path / "o.json")]
    )
    assert result.exit_code == 2
    assert "no such image folder or zip file" in result.output


def test_invalid_items_are_listed_by_index(injected: Injected, tmp_path: Path) -> None:
    query = tmp_path / "query.json"
    query.write_text(json.dumps([
        {"question": "请描述", "related_image": "red_dress.jpg", "answer": ""},
        {"question": "", "related_image": "red_dress.jpg", "answer": ""},
        {"question": "请描述", "related_image": "ghost.jpg", "answer": ""},
    ], ensure_ascii=False), encoding="utf-8")  # fmt: skip
    out = tmp_path / "answers.json"
    result = runner.invoke(main_app, ["eval", str(query), "-c", str(SAMPLE / "images"), "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "item 1: empty question" in result.output
    assert "item 2: ghost.jpg: image not found" in result.output
    assert json.loads(out.read_text(encoding="utf-8"))[2]["answer"] == ""


def test_python_m_entry_point_app(injected: Injected, tmp_path: Path) -> None:
    """``python -m vlagent.cli eval ...`` runs the main app's ``main``."""
    from vlagent.cli import __main__ as entry

    assert entry.main is main
    out = tmp_path / "answers.json"
    result = runner.invoke(main_app, sample_args(out))
    assert result.exit_code == 0, result.output
    assert out.exists()


def test_report_without_gold_has_no_plots(tmp_path: Path) -> None:
    items = [{"question": "你好", "related_image": "", "answer": ""}]
    query = tmp_path / "query.json"
    query.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    run = run_eval(FakeAgent(), query, tmp_path / "answers.json", images=[], progress=False)
    golds = load_gold(read_queries(query))
    assert golds == {}
    report = write_report(run, score_run(run.entries, golds) if golds else None, tmp_path / "r")
    assert report.plots == []
    assert json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))["summary"]["answered"] == 1
    assert "# Evaluation of `query.json`" in (tmp_path / "r" / "report.md").read_text(encoding="utf-8")


def test_a_zipped_sample_catalogue_works_the_same(injected: Injected, tmp_path: Path) -> None:
    archive = shutil.make_archive(str(tmp_path / "image"), "zip", root_dir=SAMPLE, base_dir="images")
    out = tmp_path / "answers.json"
    args = sample_args(out)
    args[args.index("--images") + 1] = archive
    result = runner.invoke(main_app, args)
    assert result.exit_code == 0, result.output
    assert all(g.get("answer") or g.get("related_image") for g in json.loads(out.read_text(encoding="utf-8")))
