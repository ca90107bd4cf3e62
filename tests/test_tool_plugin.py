"""A new tool costs one declaration: a toy tool declared here, given to one agent
(``build_agent(tool_specs=...)``, or an installed package's ``vlagent.tools`` entry point), is
called by the real agent for the question types its spec's ``calls`` name, and its result
reaches the answer (the LLM's prompt, the fallback answer, the trace, the evidence, prepare())."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from fixtures_data import one_image_folder, plain_agent_settings
from vlagent import build_agent
from vlagent.agent.calls import Call
from vlagent.agent.spec import build_spec
from vlagent.agent.toolspec import ToolSpec
from vlagent.models.context import ToolContext


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


TOY = ToolSpec(
    name="toy_weight", args=ToyArgs, factory=make_toy, field="weight", images="first", prepare=prepare_toy,
    calls={"vqa": [Call("toy_weight")], "describe": [Call("toy_weight")]},
)  # fmt: skip


class Recording(GenericFakeChatModel):
    prompts: list[str] = []

    def _generate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        self.prompts.append("\n".join(str(m.content) for m in messages))
        return super()._generate(messages, *args, **kwargs)


@pytest.fixture()
def toy_registered() -> Iterator[None]:
    CALLS.clear()
    PREPARED.clear()
    yield


@pytest.fixture()
def catalogue(tmp_path: Path) -> Path:
    return one_image_folder(tmp_path, "bag.jpg", (200, 30, 30))


def test_a_registered_tool_is_called_for_its_type_and_its_result_reaches_the_answer(
    toy_registered: None, catalogue: Path, tmp_path: Path
) -> None:
    llm = Recording(messages=itertools.cycle([AIMessage("42 克")]), prompts=[])
    agent = build_agent(plain_agent_settings(tmp_path), images=[catalogue], llm=llm, classifier_llm=None, use_cache=False, tool_specs=[TOY])
    assert "toy_weight" in agent.tool_names
    answer = agent.invoke("这个包有多重？", images=["bag.jpg"])
    assert answer.type == "vqa"
    assert CALLS == ["bag.jpg"]
    assert "toy_weight[bag.jpg]" in answer.evidence
    assert [t for t in answer.trace if t.name == "toy_weight" and t.ok]
    # the vqa template does not name the new field: it still reaches the LLM
    assert any("weight: 净重 42 克" in p for p in llm.prompts)
    assert answer.text == "42 克"


def test_without_an_llm_the_fallback_answer_uses_the_new_tool(toy_registered: None, catalogue: Path, tmp_path: Path) -> None:
    agent = build_agent(plain_agent_settings(tmp_path), images=[catalogue], use_cache=False, tool_specs=[TOY])
    answer = agent.invoke("请描述这张图片。", images=["bag.jpg"])
    assert answer.type == "describe"
    assert "净重 42 克" in answer.text


def test_prepare_walks_the_plan_into_the_new_tools_batch_hook(toy_registered: None, catalogue: Path, tmp_path: Path) -> None:
    agent = build_agent(plain_agent_settings(tmp_path), images=[catalogue], use_cache=False, tool_specs=[TOY])
    done = agent.prepare([{"question": "这个包有多重？", "images": ["bag.jpg"]}, {"question": "你好"}])
    assert done["toy_weight"] == 1 and PREPARED == [["bag.jpg"]]


def test_an_agent_without_it_neither_has_nor_plans_it(catalogue: Path, tmp_path: Path) -> None:
    build_agent(plain_agent_settings(tmp_path), images=[catalogue], use_cache=False, tool_specs=[TOY])
    plain = build_spec(plain_agent_settings(tmp_path))
    assert "toy_weight" not in [s.name for s in plain.tools]
    assert not [c for calls in plain.plan.values() for c in calls if "toy_weight" in c.tools]
    agent = build_agent(plain_agent_settings(tmp_path), images=[catalogue], use_cache=False)
    assert "toy_weight" not in agent.tool_names


def test_replacing_a_builtin_tool_keeps_its_plan_calls(tmp_path: Path) -> None:
    builtin = build_spec(plain_agent_settings(tmp_path))
    original = builtin.tool("colors")
    assert original is not None
    replaced = build_spec(plain_agent_settings(tmp_path), tools=[replace(original, factory=make_toy)])
    assert replaced.tool("colors").factory is make_toy  # type: ignore[union-attr]
    assert [s.name for s in replaced.tools] == [s.name for s in builtin.tools]  # in its place
    assert replaced.plan["vqa"] == builtin.plan["vqa"] and any(c.tools == ("colors",) for c in replaced.plan["vqa"])


def test_an_installed_plugin_is_found_by_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A package's ``vlagent.tools`` entry point (a function returning specs) and ``vlagent.cards``
    entry point join the built-ins; a broken one is a warning, not a broken agent."""
    from importlib.metadata import EntryPoint

    import vlagent.agent.registry as registry

    class Found(list):  # what importlib.metadata.entry_points(group=...) returns
        pass

    points = {
        "vlagent.tools": [EntryPoint("toy", "test_tool_plugin:plugin_tools", "vlagent.tools"),
                          EntryPoint("broken", "no_such_module_here:specs", "vlagent.tools")],
        "vlagent.cards": [],
    }  # fmt: skip
    monkeypatch.setattr(registry, "entry_points", lambda group: Found(points.get(group, [])))
    spec = build_spec(plain_agent_settings(tmp_path))
    assert spec.tool("toy_weight") is TOY and spec.plan["vqa"][-1] == Call("toy_weight")
    assert "vlagent.tools plugin broken not loaded" in caplog.text
    assert build_spec(plain_agent_settings(tmp_path), plugins=False).tool("toy_weight") is None


def plugin_tools() -> list[ToolSpec]:
    """The entry point a plugin package would declare: ``[project.entry-points."vlagent.tools"]``."""
    return [TOY]
