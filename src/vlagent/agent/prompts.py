"""Answer templates: a question card's inline ``templates``, else the ``prompts/`` folder
(``prompts/<type>.<lang>.txt``, shipped as ``vlagent.prompts``)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from string import Template

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from vlagent.agent.questions import get_card, on_change
from vlagent.agent.types import Language, QuestionType
from vlagent.agent.registry import fields as tool_fields

SEPARATOR = "=== user ==="
NONE = {"zh": "（无）", "en": "(none)"}
#: fields the answer node fills itself; the tools' fields come from the registry
BASE_FIELDS = ("question", "history", "title", "notes", "query", "best", "facts")


def fields() -> tuple[str, ...]:
    return BASE_FIELDS + tuple(f for f in tool_fields() if f not in BASE_FIELDS)


@lru_cache(maxsize=None)
def load_template(qtype: QuestionType, lang: Language) -> tuple[Template, Template]:
    """(system, user) templates of one type and language."""
    text = get_card(qtype).templates.get(lang)
    if text is None:
        text = resources.files("vlagent.prompts").joinpath(f"{qtype.value}.{lang}.txt").read_text("utf-8")
    if SEPARATOR in text:
        system, user = text.split(SEPARATOR, 1)
    else:
        system, user = "", text
    return Template(system.strip()), Template(user.strip())


def fill(qtype: QuestionType, lang: Language, values: dict[str, str]) -> tuple[str, str]:
    """(system, user) text of a template with the values put in.

    A tool field the template does not name (a newly added tool) still reaches the LLM: its
    non-empty value is listed before the template's last line ("回答：" / "Answer:")."""
    names = fields()
    filled = {k: (values.get(k) or "").strip() or NONE[lang] for k in names}
    system, user = load_template(qtype, lang)
    used = _identifiers(system) | _identifiers(user)
    # a template that takes the per-image facts has every tool's result in them already
    extra = [] if "facts" in used else [
        f"{k}: {values[k].strip()}" for k in names if k not in used and k not in BASE_FIELDS and (values.get(k) or "").strip()
    ]  # fmt: skip
    user_text = user.safe_substitute(filled)
    if extra:
        head, _, last = user_text.rpartition("\n")
        user_text = "\n".join([head, *extra, last]) if head else "\n".join([*extra, last])
    return system.safe_substitute(filled), user_text


def _identifiers(template: Template) -> set[str]:
    """The ``$names`` a template uses (``Template.get_identifiers`` is Python 3.11+)."""
    found = (m.group("named") or m.group("braced") for m in template.pattern.finditer(template.template))
    return {name for name in found if name}


def render_messages(qtype: QuestionType, lang: Language, values: dict[str, str]) -> list[BaseMessage]:
    system, user = fill(qtype, lang, values)
    messages: list[BaseMessage] = [SystemMessage(system)] if system else []
    messages.append(HumanMessage(user))
    return messages


on_change(load_template.cache_clear)  # a card registered again may bring other templates
