"""A new tool costs one declaration: a toy tool declared here, registered through the public
registry API only, is called by the real agent for its question type, and its result reaches
the answer (the LLM's prompt, the fallback answer, the trace, the evidence, prepare())."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from fixtures_data import one_image_folder, plain_agent_settings
from vlagent import build_agent
from vlagent.agent.plan import Call
from vlagent.agent.types import QuestionType
from vlagent.models.context import ToolContext
from vlagent.agent.registry import register_tool, tool_specs, unregister_tool
from vlagent.agent.toolspec import ToolSpec


class ToyArgs(BaseModel):
    image: str = Field(description="the image to weigh")


CALLS: list[str] = []
PREPARED: list[list[str]] = []


def make_toy(ctx: ToolContext) -> BaseTool:
    def toy_weight(image: str) -> tuple[str, dict[str, Any]]:
        CALLS.append(image)
        ctx.resolver.load(image)  # a real tool reads its image through the context
        return "净重 42 克", {"grams": 42}

    return StructuredTool.from_function(
        toy_weight, name="toy_weight", description="weigh the product", args_schema=ToyArgs,
        response_format="content_and_artifact",
    )  # fmt: skip


def prepare_toy(ctx: ToolContext, tool: BaseTool, calls: Sequence[dict[str, Any]]) -> int:  # noqa: ARG001
    PREPARED.append([c["image"] for c in calls])
    return len(calls)


TOY = ToolSpec(name="toy_weight", args=ToyArgs, factory=make_toy, field="weight", images="first", prepare=prepare_toy)


class Recording(GenericFakeChatModel):
    prompts: list[str] = []

    def _generate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        self.prompts.append("\n".join(str(m.content) for m in messages))
        return super()._generate(messages, *args, **kwargs)


@pytest.fixture()
def toy_registered() -> Iterator[None]:
    register_tool(TOY, plan={QuestionType.vqa: [Call("toy_weight")], QuestionType.describe: [Call("toy_weight")]})
    CALLS.clear()
    PREPARED.clear()
    yield
    unregister_tool("toy_weight")


@pytest.fixture()
def catalogue(tmp_path: Path) -> Path:
    return one_image_folder(tmp_path, "bag.jpg", (200, 30, 30))


def test_a_registered_tool_is_called_for_its_type_and_its_result_reaches_the_answer(
    toy_registered: None, catalogue: Path, tmp_path: Path
) -> None:
    llm = Recording(messages=itertools.cycle([AIMessage("42 克")]), prompts=[])
    agent = build_agent(plain_agent_settings(tmp_path), images=[catalogue], llm=llm, classifier_llm=None, use_cache=False)
    assert "toy_weight" in agent.tool_names
    answer = agent.invoke("这个包有多重？", images=["bag.jpg"])
    assert answer.type is QuestionType.vqa
    assert CALLS == ["bag.jpg"]
    assert "toy_weight[bag.jpg]" in answer.evidence
    assert [t for t in answer.trace if t.name == "toy_weight" and t.ok]
    # the vqa template does not name the new field: it still reaches the LLM
    assert any("weight: 净重 42 克" in p for p in llm.prompts)
    assert answer.text == "42 克"


def test_without_an_llm_the_fallback_answer_uses_the_new_tool(toy_registered: None, catalogue: Path, tmp_path: Path) -> None:
    agent = build_agent(plain_agent_settings(tmp_path), images=[catalogue], use_cache=False)
    answer = agent.invoke("请描述这张图片。", images=["bag.jpg"])
    assert answer.type is QuestionType.describe
    assert "净重 42 克" in answer.text


def test_prepare_walks_the_plan_into_the_new_tools_batch_hook(toy_registered: None, catalogue: Path, tmp_path: Path) -> None:
    agent = build_agent(plain_agent_settings(tmp_path), images=[catalogue], use_cache=False)
    done = agent.prepare([{"question": "这个包有多重？", "images": ["bag.jpg"]}, {"question": "你好"}])
    assert done["toy_weight"] == 1 and PREPARED == [["bag.jpg"]]


def test_unregistering_removes_the_tool_and_its_plan_calls(catalogue: Path, tmp_path: Path) -> None:
    register_tool(TOY, plan={QuestionType.vqa: [Call("toy_weight")]})
    unregister_tool("toy_weight")
    assert "toy_weight" not in [s.name for s in tool_specs()]
    agent = build_agent(plain_agent_settings(tmp_path), images=[catalogue], use_cache=False)
    assert "toy_weight" not in agent.tool_names


def test_replacing_a_builtin_tool_keeps_its_plan_calls() -> None:
    from vlagent.agent.plan import PLAN
    from vlagent.agent.registry import get_spec

    original = get_spec("colors")
    assert original is not None
    before = [c for c in PLAN[QuestionType.vqa] if c.tools == ("colors",)]
    try:
        register_tool(ToolSpec(name="colors", args=original.args, factory=make_toy, field="colors"))
        assert get_spec("colors").factory is make_toy  # type: ignore[union-attr]
        assert [c for c in PLAN[QuestionType.vqa] if c.tools == ("colors",)] == before
    finally:
        register_tool(original)
