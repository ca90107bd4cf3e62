"""Typed data that crosses the agent's boundaries: questions, classifications, traces, answers."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, Field


class QuestionType(str, Enum):
    describe = "describe"  # describe the given image
    retrieve = "retrieve"  # find the image that best matches a title / description
    vqa = "vqa"  # a question about the image: colour, fabric, style, count, who/what
    ocr = "ocr"  # read or use the text in the image
    compare = "compare"  # several images
    chat = "chat"  # no image needed
    recommend = "recommend"  # more like these (likes / dislikes: images or text)


Language = Literal["zh", "en"]


class Classification(BaseModel):
    """What the classifier decides about one question (the LLM's structured output)."""

    type: QuestionType = Field(description="the kind of question")
    language: Language = Field(description="the language of the question: zh or en")
    query: str = Field(
        "",
        description="for retrieve: the product title / description to search for, else empty",
    )
    images: list[str] = Field(
        default_factory=list, description="image file names the question refers to"
    )


class ClassifierResult(BaseModel):
    classification: Classification
    source: Literal["llm", "rules"]
    error: str | None = Field(None, description="why the LLM's answer was not used")


class ToolTrace(BaseModel):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    duration_s: float = 0.0
    ok: bool = True
    error: str | None = None
    output: Any = None


class RetrievedImage(BaseModel):
    """One search result, in the ranking's order (the fusion's, for text searches)."""

    image: str
    score: float = Field(
        description="a similarity in [0, 1] of the ranking that placed the image highest (`by`): "
        "CLIP, title or image-text cosine, or the share of the image in the colours / label words the query names"
    )
    title: str = ""
    by: str = Field("", description="the ranking the score is from: clip, title, text, colour, label")


class AnswerError(BaseModel):
    """Why there is no answer: every tool the question needed failed (names the image and reason)."""

    kind: Literal["no_evidence", "image", "llm", "internal"] = "no_evidence"
    image: str | None = Field(None, description="the image the failure is about, if one")
    reason: str

    def line(self) -> str:
        if self.image and not self.reason.startswith(self.image) and self.image not in self.reason.split(":")[0]:
            return f"{self.image}: {self.reason}"
        return self.reason


class Answer(BaseModel):
    """The agent's result for one question."""

    text: str
    type: QuestionType
    language: Language = "zh"
    images: list[RetrievedImage] = Field(default_factory=list)
    classifier: Literal["llm", "rules"] = "rules"
    trace: list[ToolTrace] = Field(default_factory=list)
    unavailable_tools: list[str] = Field(default_factory=list)
    evidence: list[str] = Field(
        default_factory=list, description="the tool results the answer used, e.g. 'ocr[label.jpg]'"
    )
    error: AnswerError | None = Field(None, description="set when no answer could be given from evidence")

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def image_ids(self) -> list[str]:
        return [r.image for r in self.images]
