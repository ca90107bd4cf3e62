"""Typed data that crosses the agent's boundaries: questions, classifications, traces, answers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, Field, GetCoreSchemaHandler, GetJsonSchemaHandler, field_validator
from pydantic_core import PydanticCustomError, core_schema

#: one instance per registered question card's name (the built-in cards register when the
#: package is imported: ``vlagent/agent/__init__.py`` imports :mod:`vlagent.agent.cards`)
_MEMBERS: dict[str, "QuestionType"] = {}
_LOCK = threading.RLock()


class _Registered(type):
    """Iteration, containment, ``QuestionType.vqa`` and ``QuestionType["vqa"]`` over the
    registered question cards (:mod:`vlagent.agent.questions`), in registration order."""

    def __iter__(cls) -> Iterator["QuestionType"]:
        return iter(list(_MEMBERS.values()))

    def __len__(cls) -> int:
        return len(_MEMBERS)

    def __contains__(cls, item: object) -> bool:
        return isinstance(item, str) and _MEMBERS.get(str.__str__(item)) is not None

    def __getattr__(cls, name: str) -> "QuestionType":
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return _MEMBERS[name]
        except KeyError:
            raise AttributeError(f"no question type {name!r} is registered") from None

    def __getitem__(cls, name: str) -> "QuestionType":
        return _MEMBERS[name]


class QuestionType(str, metaclass=_Registered):
    """The kind of a question: one registered question card's name (``describe``, ``vqa``, ...).

    It behaves as the ``str`` Enum it was: ``QuestionType.vqa``, ``QuestionType("vqa")``,
    ``.value``, ``for t in QuestionType``, ``t in QuestionType``, ``is`` comparisons (one
    instance per name), a pydantic field validated against the cards registered at validation
    time (JSON: a plain string). A card registered later (``register_question_type``) is a
    type like the others; the built-in ones are :mod:`vlagent.agent.cards`."""

    def __new__(cls, value: object) -> "QuestionType":
        if isinstance(value, QuestionType):
            return value
        found = _MEMBERS.get(str(value)) if isinstance(value, str) else None
        if found is None:
            raise ValueError(f"{value!r} is not a valid QuestionType")
        return found

    @property
    def value(self) -> str:
        return str.__str__(self)

    @property
    def name(self) -> str:
        return str.__str__(self)

    def __str__(self) -> str:
        return f"QuestionType.{self.value}"

    def __format__(self, spec: str) -> str:  # as a str Enum formats (``f"{t}"``: QuestionType.vqa)
        return format(str(self), spec)

    def __repr__(self) -> str:
        return f"<QuestionType.{self.value}: {self.value!r}>"

    def __reduce__(self) -> Any:
        return (QuestionType, (self.value,))

    def __copy__(self) -> "QuestionType":
        return self

    def __deepcopy__(self, memo: Any) -> "QuestionType":
        return self

    @classmethod
    def _add(cls, name: str) -> "QuestionType":
        """The one instance of a new name (called by ``register_question_type``)."""
        with _LOCK:
            member = _MEMBERS.get(name)
            if member is None:
                member = _MEMBERS[name] = str.__new__(cls, name)
            return member

    @classmethod
    def _remove(cls, name: str) -> None:
        with _LOCK:
            _MEMBERS.pop(name, None)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate, serialization=core_schema.plain_serializer_function_ser_schema(_dump, when_used="json")
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {"enum": [t.value for t in cls], "title": "QuestionType", "type": "string"}


def _validate(value: Any) -> QuestionType:
    try:
        return QuestionType(value)
    except ValueError:
        names = [repr(t.value) for t in QuestionType]  # as pydantic words an Enum's error
        expected = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        raise PydanticCustomError("enum", "Input should be {expected}", {"expected": expected}) from None


def _dump(value: Any) -> str:
    return value.value if isinstance(value, QuestionType) else str(value)


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
