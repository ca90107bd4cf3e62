"""`vlagent ask` and `vlagent chat` with the agent's CLI wiring and scripted parts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from test_agent_graph import FakeTools, make_agent, scripted
from vlagent.agent.types import QuestionType
from vlagent.cli import agent_cmds
from vlagent.cli.app import app


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    tools = FakeTools()
    agent = make_agent(scripted(QuestionType.vqa), tools.build(["colors", "ocr"]))
    monkeypatch.setattr(agent_cmds, "_agent", lambda catalogue, annotations, allow_files=None: agent)
    return tools


def test_ask_json_is_the_typed_result(fake: FakeTools, tmp_path: Any) -> None:
    image = tmp_path / "a.jpg"
    image.write_bytes(b"x")
    result = CliRunner().invoke(app, ["ask", "这件衣服是什么颜色的？", "--image", str(image), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["type"] == "vqa" and data["text"] == "红色"
    assert [t["name"] for t in data["trace"]][0] == "classify"
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
    from vlagent.tools.base import ToolContext

    tools = FakeTools(missing_images={"gone.jpg"})
    agent = make_agent(scripted(QuestionType.vqa), tools.build(["colors", "ocr"]))
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
