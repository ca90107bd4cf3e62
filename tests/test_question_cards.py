"""A new question type costs one card: a toy type declared here (its plan call, inline templates
and labelled examples), registered through the public API only, is classified (the learned
classifier, refit with the card's examples; the LLM as a voter), planned and answered by the
real agent; unregistered, it is gone."""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field, ValidationError

from fixtures_data import one_image_folder, plain_agent_settings
from vlagent import build_agent
from vlagent.agent.classify import decision_model, system_prompt
from vlagent.agent.fewshot import load_pool
from vlagent.agent.plan import PLAN, Call, Q
from vlagent.agent.questions import (
    QuestionCard, get_card, question_cards, register_question_type, unregister_question_type,
)  # fmt: skip
from vlagent.agent.types import Classification, QuestionType
from vlagent.agent.understand import Understander
from vlagent.agent.vote import Fusion, write_fusion
from vlagent.models.context import ToolContext
from vlagent.agent.registry import register_tool, tool_specs, unregister_tool
from vlagent.agent.toolspec import ToolSpec


class AgeArgs(BaseModel):
    image: str = Field(description="the toy to look at")
    question: str = ""


def make_age_tool(ctx: ToolContext) -> BaseTool:
    def toy_age(image: str, question: str = "") -> tuple[str, dict[str, Any]]:
        ctx.resolver.load(image)
        return "适合 3 岁以上", {"age": 3, "verdict": "3+"}

    return StructuredTool.from_function(
        toy_age, name="toy_age", description="the age a toy suits", args_schema=AgeArgs,
        response_format="content_and_artifact",
    )  # fmt: skip


AGE_TOOL = ToolSpec(
    name="toy_age", args=AgeArgs, factory=make_age_tool, field="toy_age",
    summarize=lambda art, lang: f"verdict: {(art or {}).get('verdict')}",
)  # fmt: skip


#: what the learned classifier is refit with: the card's own labelled questions
TOY_QUESTIONS = (
    "这个玩具适合几岁？", "这个玩具适合几岁的孩子？", "玩具适合多大的宝宝玩", "这款积木玩具几岁能玩？", "毛绒玩具适合婴儿吗",
    "这个玩具三岁孩子能玩吗", "玩具小零件会不会有危险", "Is this toy safe for a baby?", "What age is this toy for?",
    "Is this toy suitable for a toddler?", "toy age range?", "Can a 2 year old play with this toy?",
)  # fmt: skip


TOY = QuestionCard(
    name="toy", prompt_line="a question about a toy: the age it suits (玩具, toy).", min_images=1, max_images=1,
    answer="llm", fallback_fields=("toy_age",), single_source=True,
    plan=(Call("toy_age", {"question": Q.question}),),
    templates={"zh": "你是玩具顾问。\n=== user ===\n玩具年龄：$toy_age\n问题：$question\n回答：",
               "en": "You advise on toys.\n=== user ===\nToy age: $toy_age\nQuestion: $question\nAnswer:"},
    examples=tuple({"question": q, "images": ["a.jpg"]} for q in TOY_QUESTIONS),
    what_is_missing="judge a toy",
)  # fmt: skip


@pytest.fixture()
def toy() -> Iterator[QuestionCard]:
    register_tool(AGE_TOOL)
    register_question_type(TOY)
    yield TOY
    unregister_question_type("toy")
    unregister_tool("toy_age")


@pytest.fixture()
def catalogue(tmp_path: Path) -> Path:
    return one_image_folder(tmp_path, "duck.jpg", (30, 200, 30))


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One home for the module: the classifier refit with the toy's examples is fit once."""
    return tmp_path_factory.mktemp("cards")


def settings_for(tmp_path: Path, home: Path) -> Any:
    return plain_agent_settings(tmp_path).model_copy(update={"home": home})


class Recording(GenericFakeChatModel):
    prompts: list[str] = []

    def _generate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        self.prompts.append("\n".join(str(m.content) for m in messages))
        return super()._generate(messages, *args, **kwargs)


def test_a_registered_type_is_a_question_type(toy: QuestionCard) -> None:
    assert QuestionType("toy") is QuestionType.toy and QuestionType.toy.value == "toy"
    assert "toy" in QuestionType and QuestionType.toy in list(QuestionType)
    assert get_card("toy") is toy and toy in question_cards()
    assert Classification(type="toy", language="zh").type is QuestionType.toy
    assert Classification(type="toy", language="zh").model_dump(mode="json")["type"] == "toy"
    assert "toy" in decision_model().model_json_schema()["properties"]["type"]["enum"]
    assert "toy: a question about a toy: the age it suits (玩具, toy)." in system_prompt("structured", 0).splitlines()
    assert [e.question for e in load_pool() if e.type is QuestionType.toy] == [e["question"] for e in toy.examples]
    assert PLAN[QuestionType.toy] == list(toy.plan)


def test_unregistered_it_is_gone(toy: QuestionCard, tmp_path: Path) -> None:
    unregister_question_type("toy")
    assert "toy" not in QuestionType and "toy" not in system_prompt("structured", 0)
    with pytest.raises(ValueError):
        QuestionType("toy")
    with pytest.raises(ValidationError):
        Classification(type="toy", language="zh")
    result = Understander(plain_agent_settings(tmp_path))("这个玩具适合几岁？", ["duck.jpg"], None)
    assert result.classification.type is not None and "toy" not in result.classification.scores
    register_question_type(toy)  # for the fixture's teardown


def test_the_learned_classifier_the_plan_and_the_llm_answer_it(toy: QuestionCard, catalogue: Path, tmp_path: Path, shared_home: Path) -> None:
    settings = settings_for(tmp_path, shared_home)
    scores = Understander(settings)("这个玩具适合几岁？", ["duck.jpg"], None).classification.scores
    assert set(scores) == {t.value for t in QuestionType} and max(scores, key=scores.get) == "toy"  # refit with the card's examples
    llm = Recording(messages=itertools.cycle([AIMessage("三岁以上。")]), prompts=[])
    agent = build_agent(settings, images=[catalogue], llm=llm, classifier_llm=None, use_cache=False)
    answer = agent.invoke("这个玩具适合几岁？", images=["duck.jpg"])
    assert answer.type is QuestionType.toy and answer.classifier == "learned"
    assert "toy_age[duck.jpg]" in answer.evidence
    assert [t.args for t in answer.trace if t.name == "toy_age"] == [{"image": "duck.jpg", "question": "这个玩具适合几岁？"}]
    assert any("玩具年龄：适合 3 岁以上" in p and "你是玩具顾问。" in p for p in llm.prompts)  # the inline template
    assert answer.text == "三岁以上。"


def test_the_llm_votes_for_it(toy: QuestionCard, catalogue: Path, tmp_path: Path, shared_home: Path) -> None:
    """A fusion fit that lets this LLM outvote the learned model: the LLM's structured label wins."""
    settings = settings_for(tmp_path, shared_home)
    write_fusion(Fusion(model="FakeListChatModel", learned_weight=0.1, llm_weight=3.0, ask_below=1.01), settings.home / "fusion")
    classifier_llm = FakeListChatModel(responses=['{"type": "toy", "query": ""}'] * 2)
    result = Understander(settings)("Is it good for a baby?", ["duck.jpg"], FakeListChatModel(responses=['{"type": "toy", "query": ""}']))
    assert result.source == "fused" and result.classification.type is QuestionType.toy
    agent = build_agent(settings, images=[catalogue], classifier_llm=classifier_llm, use_cache=False)
    answer = agent.invoke("Is it good for a baby?", images=["duck.jpg"])
    assert answer.type is QuestionType.toy and answer.classifier == "fused"
    assert answer.text == "适合 3 岁以上"  # no answer LLM: the card's fallback field


def test_without_an_image_the_answer_is_an_error(toy: QuestionCard, catalogue: Path, tmp_path: Path, shared_home: Path) -> None:
    settings = settings_for(tmp_path, shared_home)
    write_fusion(Fusion(model="FakeListChatModel", learned_weight=0.1, llm_weight=3.0, ask_below=1.01), settings.home / "fusion")
    classifier_llm = FakeListChatModel(responses=['{"type": "toy", "query": ""}'] * 2)
    agent = build_agent(settings, images=[catalogue], classifier_llm=classifier_llm, use_cache=False)
    answer = agent.invoke("这个玩具图片里的适合几岁？")
    assert answer.type is QuestionType.toy and answer.error is not None
    assert answer.error.reason == "a toy question needs an image, and none was given"


def test_a_summary_card_answers_with_its_tools_verdict(toy: QuestionCard, catalogue: Path, tmp_path: Path, shared_home: Path) -> None:
    register_question_type(QuestionCard(**{**toy.__dict__, "answer": "summary", "summary_tool": "toy_age"}))
    llm = Recording(messages=itertools.cycle([AIMessage("not used")]), prompts=[])
    agent = build_agent(settings_for(tmp_path, shared_home), images=[catalogue], llm=llm, classifier_llm=None, use_cache=False)
    answer = agent.invoke("这个玩具适合几岁？", images=["duck.jpg"])
    assert answer.type is QuestionType.toy and answer.text == "verdict: 3+"
    assert not [p for p in llm.prompts if "你是玩具顾问" in p]  # no answer LLM


AGENT = Path(__file__).resolve().parents[1] / "src" / "vlagent" / "agent"
#: where a built-in type's tools and fields may be named: its card and the plan's helpers
ALLOWED = {"cards.py", "questions.py", "plan.py"}


def test_the_agent_names_no_builtin_tool_or_field_outside_the_cards() -> None:
    builtin = {s.name for s in tool_specs()} | {s.field for s in tool_specs() if s.field}
    assert {"ocr", "colors", "caption", "vqa", "ocr_text", "results", "clip_search"} <= builtin
    found = []
    for path in sorted(AGENT.glob("*.py")):
        if path.name in ALLOWED:
            continue
        tree = ast.parse(path.read_text("utf-8"))
        skip = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}  # fmt: skip
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                if node.value in builtin:
                    found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert not found, found
