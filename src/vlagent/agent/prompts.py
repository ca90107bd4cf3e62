"""Answer templates from the ``prompts/`` folder (shipped as ``vlagent.prompts``)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from string import Template

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from vlagent.agent.types import Language, QuestionType

SEPARATOR = "=== user ==="
NONE = {"zh": "（无）", "en": "(none)"}
FIELDS = (
    "question", "history", "title", "ocr_text", "colors", "caption", "vqa", "results", "notes",
    "query", "best",
)  # fmt: skip


@lru_cache(maxsize=None)
def load_template(qtype: QuestionType, lang: Language) -> tuple[Template, Template]:
    """(system, user) templates of one type and language."""
    text = resources.files("vlagent.prompts").joinpath(f"{qtype.value}.{lang}.txt").read_text("utf-8")
    if SEPARATOR in text:
        system, user = text.split(SEPARATOR, 1)
    else:
        system, user = "", text
    return Template(system.strip()), Template(user.strip())


def fill(qtype: QuestionType, lang: Language, values: dict[str, str]) -> tuple[str, str]:
    filled = {k: (values.get(k) or "").strip() or NONE[lang] for k in FIELDS}
    system, user = load_template(qtype, lang)
    return system.safe_substitute(filled), user.safe_substitute(filled)


def render_messages(qtype: QuestionType, lang: Language, values: dict[str, str]) -> list[BaseMessage]:
    system, user = fill(qtype, lang, values)
    messages: list[BaseMessage] = [SystemMessage(system)] if system else []
    messages.append(HumanMessage(user))
    return messages
