"""`vlagent ask` and `vlagent chat` with the agent's CLI wiring and scripted parts."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from typer.testing import CliRunner

from test_agent_graph import FakeTools, make_agent, scripted
from vlagent.cli import agent_cmds
from vlagent.cli.app import app


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    tools = FakeTools()
    agent = make_agent(scripted("vqa"), tools.build(["colors", "ocr"]))
    monkeypatch.setattr(agent_cmds, "_agent", lambda catalogue, annotations, allow_files=None: agent)
    return tools


def test_ask_json_is_the_typed_result(fake: FakeTools, tmp_path: Any) -> None:
    image = tmp_path / "a.jpg"
    image.write_bytes(b"x")
    result = CliRunner().invoke(app, ["ask", "这件衣服是什么颜色的？", "--image", str(image), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["type"] == "vqa" and data["text"] == "红色"
    assert [t["name"] for t in data["trace"]][0] == "understand"
    assert ("colors", {"image": str(image)}) in fake.calls


def test_ask_trace_table(fake: FakeTools) -> None:
    result = CliRunner().invoke(app, ["ask", "什么颜色？", "-i", "a.jpg", "--trace"])
    assert result.exit_code == 0, result.output
    assert "红色" in result.output and "colors" in result.output and "answer_llm" in result.output


def test_chat_attaches_remembers_traces_and_resets(fake: FakeTools, tmp_path: Any) -> None:
    image = tmp_path / "shirt.jpg"
    image.write_bytes(b"x")
    script = "\n".join(
        [
            "/image /no/such.jpg",
            f"/image {image}",
            "这是什么？",
            "那它是什么颜色的？",  # no image: the previous turn's
            "/trace",
            "/reset",
            "那它呢？",  # new conversation: no image any more
            "/bogus",
            "/quit",
        ]
    )
    result = CliRunner().invoke(app, ["chat"], input=script + "\n")
    assert result.exit_code == 0, result.output
    assert "no such image: /no/such.jpg" in result.output
    assert f"attached: {image}" in result.output
    assert fake.calls.count(("colors", {"image": str(image)})) == 2  # both turns, then reset
    assert len([c for c in fake.calls if c[0] == "colors"]) == 2
    assert "trace" in result.output and "new conversation" in result.output
    assert "unknown command /bogus" in result.output


def test_ask_and_chat_print_an_answers_error_as_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from vlagent.data.resolver import ImageResolver
    from vlagent.settings import Settings
    from vlagent.models.context import ToolContext

    tools = FakeTools(missing_images={"gone.jpg"})
    agent = make_agent(scripted("vqa"), tools.build(["colors", "ocr"]))
    agent.ctx = ToolContext(settings=Settings(home=tmp_path / "home"), resolver=ImageResolver())
    monkeypatch.setattr(agent_cmds, "_agent", lambda catalogue, annotations, allow_files=None: agent)
    result = CliRunner().invoke(app, ["ask", "什么颜色？", "-i", "gone.jpg"])
    assert result.exit_code == 1
    assert [ln for ln in result.output.splitlines() if ln.strip()] == ["error: gone.jpg: image not found (looked in the catalogue)"]
    result = CliRunner().invoke(app, ["ask", "什么颜色？", "-i", "gone.jpg", "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["error"]["kind"] == "image"

    image = tmp_path / "shirt.jpg"
    image.write_bytes(b"x")
    script = f"/image {image}\n这是什么颜色？\n/image gone.jpg\n/quit\n"
    monkeypatch.setattr(agent_cmds, "_catalogue_names", lambda agent: {"gone.jpg"})
    result = CliRunner().invoke(app, ["chat"], input=script)
    assert result.exit_code == 0, result.output
    assert image.resolve() in agent.ctx.resolver.files  # the attached file may be read, and only it
    assert "红色" in result.output  # the first question was answered
    result = CliRunner().invoke(app, ["chat"], input="/image gone.jpg\n这是什么颜色？\n/quit\n")
    assert "error: gone.jpg: image not found" in result.output and result.exit_code == 0


LONG_QUESTION = ("这件衣服是什么颜色的？" * 20_000)[:200_000]


def test_ask_refuses_a_200000_character_question_in_one_line_before_loading_any_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLAGENT_QUESTION_MAX_CHARS", raising=False)

    def no_agent(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the agent was built for a question that is refused")

    monkeypatch.setattr(agent_cmds, "_agent", no_agent)
    for extra in ([], ["--json"]):
        started = time.perf_counter()
        result = CliRunner().invoke(app, ["ask", LONG_QUESTION, "-i", "a.jpg", *extra])
        assert time.perf_counter() - started < 1.0  # no work: the old rules took minutes on it
        assert result.exit_code == 2, result.output
        assert [ln for ln in result.output.splitlines() if ln.strip()] == [
            "error: the question is too long: 200,000 characters, at most 4,000 (VLAGENT_QUESTION_MAX_CHARS)"
        ]
    monkeypatch.setenv("VLAGENT_QUESTION_MAX_CHARS", "10")
    result = CliRunner().invoke(app, ["ask", "这件衣服是什么颜色的？请看", "-i", "a.jpg"])
    assert result.exit_code == 2 and "13 characters, at most 10" in result.output


def test_chat_says_a_question_is_too_long_and_the_session_goes_on(fake: FakeTools, tmp_path: Any) -> None:
    image = tmp_path / "shirt.jpg"
    image.write_bytes(b"x")
    script = f"/image {image}\n{LONG_QUESTION}\n这是什么颜色？\n/quit\n"
    result = CliRunner().invoke(app, ["chat"], input=script)
    assert result.exit_code == 0, result.output
    assert "error: the question is too long: 200,000 characters, at most 4,000" in result.output
    assert "红色" in result.output  # the next question was answered, with the image attached before
    assert ("colors", {"image": str(image)}) in fake.calls
