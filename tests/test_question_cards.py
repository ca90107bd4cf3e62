"""A new question type costs one card: toy types declared here (their plan calls, templates
and labelled examples), given to one agent through ``build_agent(cards=..., tool_specs=...)``,
are classified (the learned classifier, refit with the cards' examples; the LLM as a voter),
planned and answered by the real agent; another agent built without them does not know them
(nothing is registered globally). A card that answers from facts brings its own sentences in
zh and en as template files."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field, ValidationError

from fixtures_data import one_image_folder, plain_agent_settings
from vlagent import build_agent
from vlagent.agent.calls import Call, Q
from vlagent.agent.cards import ORDER
from vlagent.agent.classify import decision_model, system_prompt
from vlagent.agent.facts import Decision, Facts
from vlagent.agent.fewshot import load_pool
from vlagent.agent.questions import QuestionCard
from vlagent.agent.spec import AgentSpec, build_spec
from vlagent.agent.toolspec import ToolSpec
from vlagent.agent.understand import Understander
from vlagent.agent.vote import Fusion, write_fusion
from vlagent.errors import ConfigError
from vlagent.models.context import ToolContext


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


class WeightArgs(BaseModel):
    image: str = Field(description="the toy to weigh")


def make_weight_tool(ctx: ToolContext) -> BaseTool:
    def toy_weight(image: str) -> tuple[str, dict[str, Any]]:
        ctx.resolver.load(image)
        return "42 g", {"grams": 42}

    return StructuredTool.from_function(
        toy_weight, name="toy_weight", description="weigh a toy", args_schema=WeightArgs,
        response_format="content_and_artifact",
    )  # fmt: skip


WEIGHT_TOOL = ToolSpec(name="toy_weight", args=WeightArgs, factory=make_weight_tool, field="weight", fact=None)


def decide_weight(facts: Facts) -> Decision | None:
    """The card's own decider: the weight the tool measured, said in the card's own sentences."""
    grams = [img.get("weight") for img in facts.images if img.get("weight")]
    if not grams:
        return None
    heavy = grams[0].split()[0].isdigit() and int(grams[0].split()[0]) > 100
    return Decision(facts.say("toy_heavy" if heavy else "toy_light", name=facts.images[0].name, weight=grams[0]))


WEIGHT_QUESTIONS = (
    "这个玩具有多重？", "玩具重量是多少", "这个毛绒玩具重吗", "积木玩具有多重？", "这个玩具车多少克？", "玩具的重量",
    "How heavy is this toy?", "What does this toy weigh?", "Is this toy heavy?", "toy weight in grams?",
)  # fmt: skip


def weight_card(folder: Path) -> QuestionCard:
    return QuestionCard(
        name="toyweight", prompt_line="how much a toy weighs (玩具重量, toy weight).", min_images=1, max_images=1,
        answer="facts", plan=(Call("toy_weight"),), decide=decide_weight, template_dir=folder,
        examples=tuple({"question": q, "images": ["a.jpg"]} for q in WEIGHT_QUESTIONS),
    )  # fmt: skip


#: the card's template files: its sentences in both languages (and the LLM's template, unused here)
WEIGHT_FILES = {
    "toyweight.sentences.zh.txt": "# the toy weight card's sentences\ntoy_light = 玩具（$name）很轻：$weight。\ntoy_heavy = 玩具（$name）偏重：$weight。\n",
    "toyweight.sentences.en.txt": "toy_light = The toy ($name) is light: $weight.\ntoy_heavy = The toy ($name) is heavy: $weight.\n",
    "toyweight.zh.txt": "$facts\n问题：$question\n回答：",
    "toyweight.en.txt": "$facts\nQuestion: $question\nAnswer:",
}


@pytest.fixture(scope="module")
def weight_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("toyweight-templates")
    for name, text in WEIGHT_FILES.items():
        (folder / name).write_text(text, "utf-8")
    return folder


@pytest.fixture(scope="module")
def toy_cards(weight_folder: Path) -> tuple[QuestionCard, ...]:
    """The two toy cards every agent in this module gets (one classifier refit for the module)."""
    return (TOY, weight_card(weight_folder))


TOY_TOOLS = (AGE_TOOL, WEIGHT_TOOL)


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


def test_a_card_given_to_the_agent_is_one_of_its_types(toy_cards: tuple[QuestionCard, ...], tmp_path: Path) -> None:
    spec = build_spec(plain_agent_settings(tmp_path), cards=toy_cards, tools=TOY_TOOLS)
    assert spec.types == (*ORDER, "toy", "toyweight") and spec.card("toy") is TOY
    assert "toy" in decision_model(spec.cards).model_json_schema()["properties"]["type"]["enum"]
    assert decision_model(spec.cards).model_validate({"type": "toy"}).type == "toy"
    assert "toy: a question about a toy: the age it suits (玩具, toy)." in system_prompt("structured", 0, spec.cards).splitlines()
    assert [e.question for e in load_pool(cards=spec.cards) if e.type == "toy"] == [e["question"] for e in TOY.examples]
    assert spec.plan["toy"] == TOY.plan and spec.tool("toy_age") is AGE_TOOL
    with pytest.raises(KeyError, match="no question card 'toys'"):
        spec.card("toys")


def test_an_agent_built_without_it_does_not_know_it(toy_cards: tuple[QuestionCard, ...], tmp_path: Path) -> None:
    """Nothing is registered globally: the built-in spec, the classifier's prompt and schema and a
    second agent's understanding pass stay as they were after an agent with the toy cards was built."""
    build_spec(plain_agent_settings(tmp_path), cards=toy_cards, tools=TOY_TOOLS)
    plain = build_spec(plain_agent_settings(tmp_path))
    assert "toy" not in plain.types and plain.tool("toy_age") is None and "toy" not in system_prompt("structured", 0)
    with pytest.raises(ValidationError):
        decision_model().model_validate({"type": "toy"})
    result = Understander(plain_agent_settings(tmp_path))("这个玩具适合几岁？", ["duck.jpg"], None)
    assert result.classification.type in ORDER and "toy" not in result.classification.scores


def test_two_cards_of_one_name_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="two question cards named toy"):
        AgentSpec(cards=(TOY, TOY), tools=(), settings=plain_agent_settings(tmp_path))


def test_a_card_without_its_templates_is_refused_when_the_agent_is_built(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bare = QuestionCard(name="toyless", prompt_line="x", plan=(Call("toy_scale"),), template_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"question card 'toyless' has no zh template: toyless.zh.txt in .* or vlagent/prompts"):
        build_spec(plain_agent_settings(tmp_path), cards=[bare])
    (tmp_path / "toyless.zh.txt").write_text("$question", "utf-8")
    (tmp_path / "toyless.en.txt").write_text("$question", "utf-8")
    assert build_spec(plain_agent_settings(tmp_path), cards=[bare]).card("toyless") is bare
    assert "question card toyless calls toy_scale, which no tool of this agent is" in caplog.text


def test_the_learned_classifier_the_plan_and_the_llm_answer_it(
    toy_cards: tuple[QuestionCard, ...], catalogue: Path, tmp_path: Path, shared_home: Path
) -> None:
    settings = settings_for(tmp_path, shared_home)
    scores = Understander(settings, cards=build_spec(settings, cards=toy_cards).cards)("这个玩具适合几岁？", ["duck.jpg"], None).classification.scores
    assert set(scores) == {*ORDER, "toy", "toyweight"} and max(scores, key=scores.get) == "toy"  # refit with the cards' examples
    llm = Recording(messages=itertools.cycle([AIMessage("三岁以上。")]), prompts=[])
    agent = build_agent(settings, images=[catalogue], llm=llm, classifier_llm=None, use_cache=False, cards=toy_cards, tool_specs=TOY_TOOLS)
    answer = agent.invoke("这个玩具适合几岁？", images=["duck.jpg"])
    assert answer.type == "toy" and answer.classifier == "learned"
    assert "toy_age[duck.jpg]" in answer.evidence
    assert [t.args for t in answer.trace if t.name == "toy_age"] == [{"image": "duck.jpg", "question": "这个玩具适合几岁？"}]
    assert any("玩具年龄：适合 3 岁以上" in p and "你是玩具顾问。" in p for p in llm.prompts)  # the inline template
    assert answer.text == "三岁以上。"


def test_a_card_that_answers_from_facts_says_its_own_sentences(
    toy_cards: tuple[QuestionCard, ...], catalogue: Path, tmp_path: Path, shared_home: Path
) -> None:
    """One card plus its template files: the learned classifier routes the question to it, its
    tool runs, its decider settles the answer from the facts in its own zh and en sentences, no LLM."""
    llm = Recording(messages=itertools.cycle([AIMessage("not used")]), prompts=[])
    agent = build_agent(
        settings_for(tmp_path, shared_home), images=[catalogue], llm=llm, classifier_llm=None, use_cache=False,
        cards=toy_cards, tool_specs=TOY_TOOLS,
    )  # fmt: skip
    zh = agent.invoke("这个玩具有多重？", images=["duck.jpg"])
    en = agent.invoke("How heavy is this toy?", images=["duck.jpg"])
    assert (zh.type, en.type) == ("toyweight", "toyweight")
    assert zh.text == "玩具（duck.jpg）很轻：42 g。" and en.text == "The toy (duck.jpg) is light: 42 g."
    assert "toy_weight[duck.jpg]" in zh.evidence and [t.output for t in zh.trace if t.name == "facts"] == [zh.text]
    assert not llm.prompts  # the facts settled it


def test_the_llm_votes_for_it(toy_cards: tuple[QuestionCard, ...], catalogue: Path, tmp_path: Path, shared_home: Path) -> None:
    """A fusion fit that lets this LLM outvote the learned model: the LLM's structured label wins."""
    settings = settings_for(tmp_path, shared_home)
    write_fusion(Fusion(model="FakeListChatModel", learned_weight=0.1, llm_weight=3.0, ask_below=1.01), settings.home / "fusion")
    classifier_llm = FakeListChatModel(responses=['{"type": "toy", "query": ""}'] * 2)
    cards = build_spec(settings, cards=toy_cards).cards
    result = Understander(settings, cards=cards)("Is it good for a baby?", ["duck.jpg"], FakeListChatModel(responses=['{"type": "toy", "query": ""}']))
    assert result.source == "fused" and result.classification.type == "toy"
    agent = build_agent(settings, images=[catalogue], classifier_llm=classifier_llm, use_cache=False, cards=toy_cards, tool_specs=TOY_TOOLS)
    answer = agent.invoke("Is it good for a baby?", images=["duck.jpg"])
    assert answer.type == "toy" and answer.classifier == "fused"
    assert answer.text == "适合 3 岁以上"  # no answer LLM: the card's fallback field


def test_without_an_image_the_answer_is_an_error(toy_cards: tuple[QuestionCard, ...], catalogue: Path, tmp_path: Path, shared_home: Path) -> None:
    settings = settings_for(tmp_path, shared_home)
    write_fusion(Fusion(model="FakeListChatModel", learned_weight=0.1, llm_weight=3.0, ask_below=1.01), settings.home / "fusion")
    classifier_llm = FakeListChatModel(responses=['{"type": "toy", "query": ""}'] * 2)
    agent = build_agent(settings, images=[catalogue], classifier_llm=classifier_llm, use_cache=False, cards=toy_cards, tool_specs=TOY_TOOLS)
    answer = agent.invoke("这个玩具图片里的适合几岁？")
    assert answer.type == "toy" and answer.error is not None
    assert answer.error.reason == "a toy question needs an image, and none was given"


def test_a_summary_card_answers_with_its_tools_verdict(toy_cards: tuple[QuestionCard, ...], catalogue: Path, tmp_path: Path, shared_home: Path) -> None:
    summary = QuestionCard(**{**TOY.__dict__, "answer": "summary", "summary_tool": "toy_age"})
    llm = Recording(messages=itertools.cycle([AIMessage("not used")]), prompts=[])
    agent = build_agent(
        settings_for(tmp_path, shared_home), images=[catalogue], llm=llm, classifier_llm=None, use_cache=False,
        cards=(summary, toy_cards[1]), tool_specs=TOY_TOOLS,
    )  # fmt: skip
    answer = agent.invoke("这个玩具适合几岁？", images=["duck.jpg"])
    assert answer.type == "toy" and answer.text == "verdict: 3+"
    assert not [p for p in llm.prompts if "你是玩具顾问" in p]  # no answer LLM


ROOT = Path(__file__).resolve().parents[1]
AGENT = ROOT / "src" / "vlagent" / "agent"
#: where a built-in type's name, tools and fields may be named: its card (and the card's dataclass)
ALLOWED = {"cards.py", "questions.py"}


def _constants(path: Path) -> list[ast.Constant]:
    """The string constants of a module that are not docstrings."""
    tree = ast.parse(path.read_text("utf-8"))
    skip = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}  # fmt: skip
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip]


def test_the_agent_names_no_builtin_type_tool_or_field_outside_the_cards() -> None:
    spec = build_spec(plugins=False)
    builtin = set(spec.types) | {s.name for s in spec.tools} | set(spec.fields)
    assert {"describe", "compare", "vqa", "ocr", "colors", "caption", "ocr_text", "results", "clip_search"} <= builtin
    found = [
        f"{path.name}:{node.lineno}: {node.value!r}"
        for path in sorted(AGENT.glob("*.py")) if path.name not in ALLOWED
        for node in _constants(path) if node.value in builtin
    ]  # fmt: skip
    assert not found, found


def test_no_code_names_a_question_type_as_an_attribute() -> None:
    """``QuestionType.vqa`` (or any ``QuestionType.<name>``) nowhere in the package: a type is a
    card's name, and only the card decides what its questions get."""
    found = []
    for folder in ("src/vlagent", "tools", "evals"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "QuestionType":
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: QuestionType.{node.attr}")
    assert not found, found
