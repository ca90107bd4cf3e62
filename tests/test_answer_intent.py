"""The answer writer reads the intent, never the question's words; a colour question about an
untitled image is answered with the colour the tool measured, whatever the LLM writes."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from PIL import Image, ImageDraw

from fixtures_data import plain_agent_settings
from vlagent import build_agent
from vlagent.agent.cues import read_cues
from vlagent.agent.language import detect_language
from vlagent.agent.types import ClassifierResult, Cues, Intent


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Untitled images: a green circle, a red square, a blue T-shirt-ish block on white."""
    folder = tmp_path_factory.mktemp("shapes")
    for name, colour, shape in [("circle.png", (20, 160, 40), "ellipse"), ("square.png", (200, 20, 20), "rectangle"),
                                ("shirt.png", (30, 60, 200), "rectangle")]:  # fmt: skip
        img = Image.new("RGB", (160, 160), (255, 255, 255))
        getattr(ImageDraw.Draw(img), shape)((30, 30, 130, 130), fill=colour)
        img.save(folder / name)
    return folder


def fixed(qtype: str, cues: Cues | None = None) -> Any:
    """A classifier that decides the type (the test is about the answer, not a model's taste);
    the cues are read from the question unless given."""

    def run(question: str, images: list[str], llm: Any) -> ClassifierResult:
        intent = Intent(
            type=qtype, language=detect_language(question), images=list(images),
            cues=cues if cues is not None else read_cues(question, images),
        )  # fmt: skip
        return ClassifierResult(classification=intent, source="learned")

    return run


class Writes(GenericFakeChatModel):
    prompts: list[str] = []

    def _generate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        self.prompts.append("\n".join(str(m.content) for m in messages))
        return super()._generate(messages, *args, **kwargs)


def agent_for(tmp_path: Path, shapes: Path, says: str, qtype: str, cues: Cues | None = None) -> tuple[Any, Writes]:
    llm = Writes(messages=itertools.cycle([AIMessage(says)]), prompts=[])
    agent = build_agent(plain_agent_settings(tmp_path), images=[shapes], llm=llm, classifier_llm=None, use_cache=False)
    agent.parts.classifier = fixed(qtype, cues)
    return agent, llm


@pytest.mark.parametrize("says", ["Main colours", "I cannot tell from the image information."])
@pytest.mark.parametrize(
    ("question", "image", "colour"),
    [
        ("what is the color of the circle?", "circle.png", "green"),
        ("What colour are these shoes?", "square.png", "red"),
        ("这件T恤是什么颜色的？", "shirt.png", "蓝"),
    ],
)
def test_a_colour_question_is_answered_from_the_measured_colour(
    tmp_path: Path, shapes: Path, says: str, question: str, image: str, colour: str
) -> None:
    agent, llm = agent_for(tmp_path, shapes, says, "vqa")
    answer = agent.invoke(question, images=[image])
    assert colour in answer.text.lower() and says not in answer.text
    assert not llm.prompts  # the measured colour is the answer: no LLM asked
    assert f"colors[{image}]" in answer.evidence


def test_an_llm_answer_that_leaves_the_colour_out_gets_it_first(tmp_path: Path, shapes: Path) -> None:
    agent, llm = agent_for(tmp_path, shapes, "I cannot tell from the image information.", "vqa")
    answer = agent.invoke("What colour is it, and what is it made of?", images=["square.png"])
    assert llm.prompts and answer.text.lower().startswith("the main colour is red")
    assert answer.text.endswith("I cannot tell from the image information.")


def test_each_image_gets_its_colour(tmp_path: Path, shapes: Path) -> None:
    agent, _ = agent_for(tmp_path, shapes, "Main colours", "compare")
    answer = agent.invoke("这两张图分别是什么颜色？", images=["circle.png", "square.png"])
    assert "绿" in answer.text and "红" in answer.text and "Main colours" not in answer.text


def test_the_answer_writer_reads_the_intent_not_the_words(tmp_path: Path, shapes: Path) -> None:
    """The same intent with two different texts: the same answer (no LLM, the facts decide)."""
    cues = Cues(colour=True, colour_only=True)
    agent, _ = agent_for(tmp_path, shapes, "unused", "vqa", cues)
    agent.parts.llm = None
    one = agent.invoke("这件T恤是什么颜色的？", images=["square.png"])
    two = agent.invoke("请告诉我一些关于它的事情", images=["square.png"])  # no colour word at all
    assert one.text == two.text and "红" in one.text
    plain, _ = agent_for(tmp_path / "b", shapes, "unused", "vqa", Cues())
    plain.parts.llm = None
    three = plain.invoke("这件T恤是什么颜色的？", images=["square.png"])  # the words ask colour, the intent does not
    assert three.text != one.text
