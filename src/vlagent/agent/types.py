"""Typed data that crosses the agent's boundaries: questions, classifications, traces, answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

#: The kind of a question: one question card's name (``describe``, ``vqa``, ...; the agent's
#: cards are :attr:`vlagent.agent.spec.AgentSpec.types`). A plain string: which names are valid
#: is the agent's spec's to say, not a global list.
QuestionType = str

Language = Literal["zh", "en"]


class Classification(BaseModel):
    """What the classifier decides about one question (the LLM's structured output)."""

    type: QuestionType = Field(description="the kind of question: one of the agent's question cards")
    language: Language = Field(description="the language of the question: zh or en")
    query: str = Field(
        "",
        description="for retrieve: the product title / description to search for, else empty",
    )
    images: list[str] = Field(
        default_factory=list, description="image file names the question refers to"
    )


class Cues(BaseModel):
    """What the answer writer needs from the question's words, read once (:mod:`vlagent.agent.cues`)."""

    colour: bool = Field(False, description="the question asks about colour (of the image, or of each image)")
    colour_only: bool = Field(False, description="... and asks nothing else: the measured colours are the answer")
    which: str = Field("", description='"which one is X?" over several images: X as written (a kind of thing or a colour)')
    transcribe: bool = Field(False, description="the answer is the text as read off the image")


#: who decided the type: the learned model alone, pooled with the LLM's vote, or (no model
#: here) the LLM alone; "rules" when neither could run (the default type)
ClassifierSource = Literal["learned", "fused", "llm", "rules"]


class Intent(Classification):
    """The one reading of a question the graph keeps: type, query, language, images, cues."""

    cues: Cues = Field(default_factory=Cues)
    scores: dict[str, float] = Field(default_factory=dict, description="the pooled probability of each type")


class ClassifierResult(BaseModel):
    classification: Intent
    source: ClassifierSource
    error: str | None = Field(None, description="why a voter was not used (no LLM, a failed call, a timeout)")

    @field_validator("classification", mode="before")
    @classmethod
    def _as_intent(cls, value: Any) -> Any:
        """A plain :class:`Classification` (a custom classifier's) is an intent with no cues."""
        if isinstance(value, Classification) and not isinstance(value, Intent):
            return Intent(**value.model_dump())
        return value


class PlannedCall(BaseModel):
    """One tool call the plan node decided (the tool node runs it)."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    round: int = 0
    n: int = Field(0, description="its place among the round's calls")


class ToolResult(BaseModel):
    """What one tool call gave: kept in the graph's state, read by the plan's next round and the answer writer."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    ok: bool
    text: str = Field("", description="the tool's text result (what a template field gets)")
    output: Any = Field(None, description="the tool's structured result (its artifact)")
    error: str | None = None
    image: str | None = Field(None, description="the image the call was about (the first, for several)")
    image_error: bool = Field(False, description="the call failed because of its image (missing, corrupt, not allowed)")
    seconds: float = 0.0
    round: int = 0
    n: int = 0


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
    classifier: ClassifierSource = "learned"
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
