"""Templates: the answer LLM's (a question card's inline ``templates``, else ``<type>.<lang>.txt``
in the card's ``template_dir`` or the ``prompts/`` folder, shipped as ``vlagent.prompts``) and the
sentence books the facts answers are said with (``sentences.<lang>.txt``, and a card's own
``<type>.sentences.<lang>.txt`` over it).

A sentence book holds one ``key = text`` per line (``#`` comments; ``$name`` is filled in; a value
in double quotes keeps its spaces, as JSON reads it)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from string import Template
from types import MappingProxyType

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from vlagent.agent.questions import QuestionCard
from vlagent.agent.types import Language
from vlagent.errors import ConfigError

SEPARATOR = "=== user ==="
NONE = {"zh": "（无）", "en": "(none)"}
#: fields the answer node fills itself; the tools' fields come from the agent's spec
BASE_FIELDS = ("question", "history", "title", "notes", "query", "best", "facts")


def _shipped(name: str) -> str | None:
    """A file of the shipped prompts (None: there is none)."""
    path = resources.files("vlagent.prompts").joinpath(name)
    return path.read_text("utf-8") if path.is_file() else None


def _read(card: QuestionCard, name: str) -> str | None:
    """A template file of the card: its own folder first, then the shipped prompts (None: neither has it)."""
    if card.template_dir is not None:
        path = Path(card.template_dir) / name
        if path.is_file():
            return path.read_text("utf-8")
    return _shipped(name)


@lru_cache(maxsize=64)
def load_template(card: QuestionCard, lang: Language) -> tuple[Template, Template]:
    """(system, user) templates of one card and language."""
    text = card.templates.get(lang)
    if text is None:
        text = _read(card, f"{card.name}.{lang}.txt")
    if text is None:
        where = f"{card.template_dir} or " if card.template_dir else ""
        raise ConfigError(f"question card {card.name!r} has no {lang} template: {card.name}.{lang}.txt in {where}vlagent/prompts")
    if SEPARATOR in text:
        system, user = text.split(SEPARATOR, 1)
    else:
        system, user = "", text
    return Template(system.strip()), Template(user.strip())


def read_sentences(text: str, source: str) -> dict[str, str]:
    """A sentence book's ``key = text`` lines."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{source}:{n}: expected `key = text`, got {stripped!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = json.loads(value)
        out[key.strip()] = value
    return out


@lru_cache(maxsize=64)
def sentences(card: QuestionCard, lang: str) -> Mapping[str, str]:
    """The sentences a card's answers are said with in ``lang``: the shared book, then the card's own."""
    lang = "zh" if lang == "zh" else "en"
    shared = _shipped(f"sentences.{lang}.txt")
    if shared is None:
        raise ConfigError(f"vlagent/prompts/sentences.{lang}.txt is missing: reinstall vlagent")
    book = read_sentences(shared, f"sentences.{lang}.txt")
    own = _read(card, f"{card.name}.sentences.{lang}.txt")
    if own is not None:
        book.update(read_sentences(own, f"{card.name}.sentences.{lang}.txt"))
    return MappingProxyType(book)


def fill(card: QuestionCard, lang: Language, values: dict[str, str], tool_fields: tuple[str, ...] = ()) -> tuple[str, str]:
    """(system, user) text of a template with the values put in.

    A tool field the template does not name (a newly added tool) still reaches the LLM: its
    non-empty value is listed before the template's last line ("回答：" / "Answer:")."""
    names = BASE_FIELDS + tuple(f for f in tool_fields if f not in BASE_FIELDS)
    filled = {k: (values.get(k) or "").strip() or NONE[lang] for k in names}
    system, user = load_template(card, lang)
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


def render_messages(
    card: QuestionCard, lang: Language, values: dict[str, str], tool_fields: tuple[str, ...] = ()
) -> list[BaseMessage]:
    system, user = fill(card, lang, values, tool_fields)
    messages: list[BaseMessage] = [SystemMessage(system)] if system else []
    messages.append(HumanMessage(user))
    return messages
