"""Degraded answers: items answered while a server was down are marked, counted and redone.

The end-to-end case (the fake LLM server killed mid-run, restarted, the run mended) is in
tests/test_bad_input.py; here the rules, with a scripted agent and scripted server errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image

from eval_fakes import FakeAgent
from vlagent.agent.types import Answer, AnswerError, ToolTrace
from vlagent.evals.harness import run_eval
from vlagent.evals.journal import JournalEntry, journal_path, load_journal
from vlagent.models.servers import Server, backend_unavailable, was_unavailable

URL = "http://127.0.0.1:9/v1"
DOWN = f"LLM server {URL} is unreachable after 0 retries; start it with `vlagent serve llm` or fix VLAGENT_LLM_BASE_URL"
VLM_DOWN = f"VLM server {URL} is unreachable after 0 retries; start it with `vlagent serve vlm`"


# --------------------------------------------------------------------------- which lines say "down"


def _server_line(exc: BaseException) -> str:
    server = Server(kind="LLM", url=URL, model="m", timeout=5.0, retries=1, hint="start it")
    return str(backend_unavailable(exc, server))


def _status(code: int) -> openai.APIStatusError:
    response = httpx.Response(code, request=httpx.Request("POST", URL), json={"error": {"message": "x"}})
    cls = {400: openai.BadRequestError, 404: openai.NotFoundError, 500: openai.InternalServerError}[code]
    return cls("x", response=response, body=None)


@pytest.mark.parametrize(
    "line, down",
    [
        (_server_line(openai.APIConnectionError(request=httpx.Request("POST", URL))), True),
        (_server_line(openai.APITimeoutError(request=httpx.Request("POST", URL))), True),
        (_server_line(_status(500)), True),
        (_server_line(_status(404)), True),
        (_server_line(_status(400)), False),  # the request was refused: asking again changes nothing
        ("Chroma server at http://127.0.0.1:8000 is not reachable (ConnectError); start one", True),
        ("llm failed: TimeoutError: the LLM did not answer within 20 s", True),
        ("llm failed: ValueError: Unexpected response type from OpenAI-compatible endpoint. Expected a dict", True),
        ("llm failed: invalid LLM output: ValidationError: 1 validation error for LLMDecision", False),
        ("no LLM configured", False),
        ("empty reply", False),
        ("llm said vqa but there is no image; rules chose chat", False),
        ("dress.jpg: the image file is corrupt (truncated)", False),
    ],
    ids=["unreachable", "timeout", "500", "404", "400", "chroma", "classify-timeout", "html", "invalid-json",
         "no-llm", "empty", "referee", "image"],  # fmt: skip
)
def test_a_server_that_was_down_is_told_from_bad_input_and_bad_output(line: str, down: bool) -> None:
    assert was_unavailable(line) is down, line


def test_a_journal_line_written_before_the_field_gets_it_from_its_tool_errors() -> None:
    old = {"index": 3, "key": "k", "status": "ok", "tool_errors": [f"classify: llm failed: {DOWN}", "ocr: a.jpg: corrupt"]}
    assert JournalEntry.model_validate_json(json.dumps(old)).degraded == [f"classify: llm failed: {DOWN}"]
    written = JournalEntry(index=3, key="k", status="ok", tool_errors=[f"classify: llm failed: {DOWN}"], degraded=[])
    assert JournalEntry.model_validate_json(written.model_dump_json()).degraded == []  # what was written wins


# --------------------------------------------------------------------------- the harness


ITEMS = [
    {"question": "请对给定的图片进行描述。", "related_image": "a.jpg", "answer": ""},
    {"question": "这件衣服是什么颜色？ (outage)", "related_image": "b.jpg", "answer": ""},
    {"question": "你好", "related_image": "", "answer": ""},
    {"question": "请描述这张图片 (outage, no tool)", "related_image": "c.jpg", "answer": ""},
    {"question": "FAIL 请描述", "related_image": "a.jpg", "answer": ""},
    {"question": "这件衣服是什么颜色？ (outage)", "related_image": "b.jpg", "answer": ""},  # a duplicate of 1
]


class Outage(FakeAgent):
    """While ``down``, a question marked "(outage)" falls back (the classifier to the rules, the
    answer to the tools), and one marked "(outage, no tool)" fails: its only tool's server is down."""

    def __init__(self, down: bool, fail_on_redo: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        super().__init__()
        self.down = down
        self.fail_on_redo = fail_on_redo

    def invoke(self, question, config=None):  # type: ignore[no-untyped-def]
        text = question["question"]
        if text in self.fail_on_redo:
            self.calls[text] += 1
            raise RuntimeError("scripted failure on the redo")
        if not self.down or "(outage" not in text:
            return super().invoke(question, config)
        self.calls[text] += 1
        classify = ToolTrace(name="classify", ok=False, error=f"llm failed: {DOWN}")
        if "no tool" in text:
            return Answer(
                text="", type="vqa", trace=[classify, ToolTrace(name="vqa", ok=False, error=VLM_DOWN)],
                error=AnswerError(kind="no_evidence", image="c.jpg", reason=f"every tool failed (vqa: {VLM_DOWN})"),
            )  # fmt: skip
        trace = [classify, ToolTrace(name="colors"), ToolTrace(name="answer_llm", ok=False, error=DOWN)]
        return Answer(text="红色 (facts)", type="vqa", trace=trace, evidence=["colors[b.jpg]"])


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.new("RGB", (8, 8)).save(folder / name)
    query = tmp_path / "query.json"
    query.write_text(json.dumps(ITEMS, ensure_ascii=False), encoding="utf-8")
    return folder, query, tmp_path / "answers.json"


def test_degraded_items_are_journalled_counted_and_redone_only_with_the_flag(setup: tuple[Path, Path, Path]) -> None:
    folder, query, out = setup
    first = run_eval(Outage(down=True), query, out, images=[folder], progress=False)
    summary = first.summary
    assert {p.index for p in summary.degraded} == {1, 3, 5}  # answered, failed, the duplicate of 1
    assert {p.index for p in summary.failed} == {3, 4}
    assert all("is unreachable" in p.message for p in summary.degraded)
    journal = load_journal(journal_path(out))
    assert journal[1].degraded == [f"classify: llm failed: {DOWN}", f"answer_llm: {DOWN}"]
    assert journal[3].degraded == [f"classify: llm failed: {DOWN}", f"vqa: {VLM_DOWN}"]
    assert not journal[0].degraded and not journal[4].degraded  # a bad input is no outage

    agent = Outage(down=False)
    kept = run_eval(agent, query, out, images=[folder], resume=True, progress=False)
    assert agent.n_calls == 0 and {p.index for p in kept.summary.degraded} == {1, 3, 5}

    mended = run_eval(agent, query, out, images=[folder], resume=True, retry_degraded=True, progress=False)
    assert sorted(agent.calls) == sorted({ITEMS[1]["question"], ITEMS[3]["question"]}) and agent.n_calls == 2
    assert mended.summary.degraded == [] and mended.summary.redone == 2
    assert {p.index for p in mended.summary.failed} == {4}  # the bad input stays failed: not an outage
    answers = json.loads(out.read_text(encoding="utf-8"))
    assert answers[1]["answer"] == answers[5]["answer"] == "灰色"  # the agent's own answer, no longer the fallback
    assert answers[3]["answer"] == "描述 c.jpg"  # the failed one is answered now

    both = Outage(down=False)
    run_eval(both, query, out, images=[folder], resume=True, retry_failed=True, retry_degraded=True, progress=False)
    assert sorted(both.calls) == [ITEMS[4]["question"]]  # nothing degraded is left; the failure is asked again


def test_a_redo_that_fails_keeps_the_degraded_answer(setup: tuple[Path, Path, Path]) -> None:
    folder, query, out = setup
    run_eval(Outage(down=True), query, out, images=[folder], progress=False)
    agent = Outage(down=True, fail_on_redo={ITEMS[1]["question"]})
    run = run_eval(agent, query, out, images=[folder], resume=True, retry_degraded=True, progress=False)
    assert agent.calls[ITEMS[1]["question"]] == 1
    answers = json.loads(out.read_text(encoding="utf-8"))
    assert answers[1]["answer"] == answers[5]["answer"] == "红色 (facts)"  # not lost to the failed redo
    assert 1 not in {p.index for p in run.summary.failed} and 1 in {p.index for p in run.summary.degraded}
    assert load_journal(journal_path(out))[1].status == "ok"  # the next resume sees the answer, still degraded
