"""The HTTP API's request and error bodies (pydantic); responses reuse Answer and openai's types."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MODEL_NAME = "vlagent"


class AnswerRequest(BaseModel):
    """``POST /v1/answer`` as JSON (multipart forms carry the same fields plus ``files``)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, description="the question, Chinese or English")
    images: list[str] = Field(default_factory=list, description="catalogue image names (or this thread's uploads)")
    thread_id: str | None = Field(None, max_length=200, description="keep a conversation: follow-ups refer to its images")
    stream: bool = Field(False, description="server-sent events: one `step` per node, then `answer` or `error`")


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None = None


class ErrorBody(BaseModel):
    """Every 4xx/5xx body: ``{"error": {"message", "type", "code"}}`` (the OpenAI shape)."""

    error: ErrorDetail
    answer: dict[str, Any] | None = None


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImageURL(BaseModel):
    url: str
    detail: str | None = None


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content or [] if isinstance(p, TextPart))

    def image_urls(self) -> list[str]:
        if isinstance(self.content, str) or not self.content:
            return []
        return [p.image_url.url for p in self.content if isinstance(p, ImagePart)]


class ChatRequest(BaseModel):
    """OpenAI's chat completion request; sampling parameters are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    user: str | None = None
