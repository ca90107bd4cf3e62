"""The agent's one spec: its question cards, its tools and its settings, assembled once.

:func:`build_spec` takes the built-in cards (:mod:`vlagent.agent.cards`) and tools
(:func:`vlagent.agent.registry.builtin_tools`), the installed plugins' (entry points), and the
caller's own (``build_agent(cards=..., tool_specs=...)``: a card or tool of the same name
replaces the earlier one, in its place). The result is immutable and handed to each part that
needs it (the understanding pass, the plan, the answer writer); the plan table derives from it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import TypeVar

from vlagent.agent.calls import Call
from vlagent.agent.cards import BUILTIN
from vlagent.agent.prompts import load_template
from vlagent.agent.questions import QuestionCard
from vlagent.agent.registry import builtin_tools, plugin_cards, plugin_tools
from vlagent.agent.toolspec import ToolSpec
from vlagent.errors import ConfigError
from vlagent.settings import Settings

log = logging.getLogger(__name__)

Named = TypeVar("Named", QuestionCard, ToolSpec)
#: the languages every card answers in (its templates)
LANGUAGES = ("zh", "en")


def merged(*groups: Iterable[Named]) -> tuple[Named, ...]:
    """The items of every group in order; a later item replaces an earlier one of the same name, in its place."""
    out: dict[str, Named] = {}
    for group in groups:
        for item in group:
            out[item.name] = item
    return tuple(out.values())


@dataclass(frozen=True, eq=False)
class AgentSpec:
    cards: tuple[QuestionCard, ...]
    tools: tuple[ToolSpec, ...]
    settings: Settings = field(default_factory=Settings)

    def __post_init__(self) -> None:
        if not self.cards:
            raise ConfigError("the agent needs at least one question card")
        for kind, names in (("question card", [c.name for c in self.cards]), ("tool", [t.name for t in self.tools])):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ConfigError(f"two {kind}s named {', '.join(twice)}: give each its own name")
        for card in self.cards:  # a card's template is found now, not at its first question
            if card.answer != "summary":
                for lang in LANGUAGES:
                    load_template(card, lang)  # type: ignore[arg-type]
        tools = {t.name for t in self.tools}
        for card in self.cards:
            unknown = sorted({"/".join(call.tools) for call in card.plan if not tools & set(call.tools)})
            if unknown:  # a plugin's tool that is not installed here, or a typo: those calls never run
                log.warning("question card %s calls %s, which no tool of this agent is", card.name, ", ".join(unknown))

    # --- the question types -------------------------------------------------------------------
    @cached_property
    def types(self) -> tuple[str, ...]:
        """The question types, in the cards' order."""
        return tuple(c.name for c in self.cards)

    @cached_property
    def _cards(self) -> Mapping[str, QuestionCard]:
        return MappingProxyType({c.name: c for c in self.cards})

    def card(self, name: str) -> QuestionCard:
        try:
            return self._cards[str(name)]
        except KeyError:
            raise KeyError(f"no question card {name!r} (the agent has {', '.join(self.types)})") from None

    @cached_property
    def prompt_cards(self) -> tuple[QuestionCard, ...]:
        """The cards in the classifier prompt's order (``prompt_rank``, then the cards' order)."""
        return tuple(sorted(self.cards, key=lambda c: c.prompt_rank))

    # --- the tools ----------------------------------------------------------------------------
    @cached_property
    def tool_map(self) -> Mapping[str, ToolSpec]:
        return MappingProxyType({t.name: t for t in self.tools})

    def tool(self, name: str) -> ToolSpec | None:
        return self.tool_map.get(name)

    @cached_property
    def fields(self) -> tuple[str, ...]:
        """The template fields the tools fill, in the tools' order."""
        return tuple(dict.fromkeys(t.field for t in self.tools if t.field))

    # --- the plan -----------------------------------------------------------------------------
    @cached_property
    def plan(self) -> Mapping[str, tuple[Call, ...]]:
        """Question type → its calls: the card's own, then those the tools add for it."""
        return MappingProxyType({
            c.name: (*c.plan, *(call for t in self.tools for call in t.calls.get(c.name, ())))
            for c in self.cards
        })  # fmt: skip

    def rounds(self, qtype: str) -> int:
        return 1 + max((c.round for c in self.plan.get(qtype, ())), default=0)


def build_spec(
    settings: Settings | None = None,
    *,
    cards: Iterable[QuestionCard] = (),
    tools: Iterable[ToolSpec] = (),
    plugins: bool = True,
) -> AgentSpec:
    """The built-in cards and tools, the installed plugins' (``plugins``), then ``cards``/``tools``."""
    return AgentSpec(
        cards=merged(BUILTIN, plugin_cards() if plugins else (), cards),
        tools=merged(builtin_tools(), plugin_tools() if plugins else (), tools),
        settings=settings or Settings(),
    )


__all__ = ["AgentSpec", "build_spec", "merged"]
