"""Where the agent's tools and question cards come from, and what a tool set can do here.

Nothing is registered anywhere: :func:`builtin_tools` imports the built-in tool modules by name
(:data:`BUILTIN_MODULES`, each ends with ``SPECS = [...]``), :func:`plugin_tools` and
:func:`plugin_cards` read the installed packages' entry points (``vlagent.tools``: a list of
:class:`ToolSpec` or a function returning one; ``vlagent.cards``: the same for
:class:`QuestionCard`), and :func:`vlagent.agent.spec.build_spec` assembles them, once per
agent, into one immutable spec. Nothing outside this module imports a tool module.

    probe_all(specs, ctx)      # {name: None | reason}, no weights loaded
    build_tools(specs, ctx)    # ({name: BaseTool} usable here, {name: reason} dropped)
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from langchain_core.tools import BaseTool

from vlagent.agent.questions import QuestionCard
from vlagent.agent.toolspec import ToolSpec
from vlagent.errors import VlagentError, one_line

if TYPE_CHECKING:  # pragma: no cover
    from vlagent.models.context import ToolContext

log = logging.getLogger(__name__)

#: The built-in tools, in the order the agent lists them. They are loaded by module name with
#: importlib, as plugins are from their entry points: a tool module sits above the agent (it imports
#: the engines and the agent's ToolSpec), so the agent never imports one statically.
BUILTIN_MODULES = (
    "vlagent.tools.ocr",
    "vlagent.tools.colors",
    "vlagent.tools.caption",
    "vlagent.tools.vqa",
    "vlagent.tools.retrieval",
    "vlagent.tools.recommend",
    "vlagent.tools.match",
)
TOOLS_GROUP = "vlagent.tools"
CARDS_GROUP = "vlagent.cards"


def builtin_tools() -> tuple[ToolSpec, ...]:
    """Every built-in tool's spec, in :data:`BUILTIN_MODULES` order."""
    return tuple(spec for module in BUILTIN_MODULES for spec in getattr(importlib.import_module(module), "SPECS", ()))


def _plugins(group: str, kind: type) -> tuple[Any, ...]:
    """What the installed packages' entry points of ``group`` offer (a broken plugin is a warning)."""
    found: list[Any] = []
    for ep in entry_points(group=group):
        try:
            hook = ep.load()
            items = list((hook() if callable(hook) else hook) or ())
            bad = [type(i).__name__ for i in items if not isinstance(i, kind)]
            if bad:
                raise TypeError(f"expected {kind.__name__} objects, got {', '.join(bad)}")
            found += items
        except Exception as exc:  # a broken plugin must not break the agent
            log.warning("%s plugin %s not loaded: %s", group, ep.name, one_line(exc))
    return tuple(found)


def plugin_tools() -> tuple[ToolSpec, ...]:
    return _plugins(TOOLS_GROUP, ToolSpec)


def plugin_cards() -> tuple[QuestionCard, ...]:
    return _plugins(CARDS_GROUP, QuestionCard)


def probe_all(specs: Iterable[ToolSpec], ctx: "ToolContext") -> dict[str, str | None]:
    """{tool name: None if usable else the reason} without loading any model."""
    out: dict[str, str | None] = {}
    for spec in specs:
        try:
            out[spec.name] = spec.probe(ctx)
        except Exception as exc:  # noqa: BLE001 - a probe that breaks says why, once
            out[spec.name] = f"{spec.name}: probe failed ({one_line(exc)})"
    return out


def build_tools(
    specs: Iterable[ToolSpec], ctx: "ToolContext", only: Iterable[str] | None = None
) -> tuple[dict[str, BaseTool], dict[str, str]]:
    """({name: tool} for the tools usable here, {name: one-line reason} for the others).

    A fallback tool (``fallback_for``) is built only when every tool it stands in for is missing."""
    wanted = set(only) if only is not None else None
    tools: dict[str, BaseTool] = {}
    dropped: dict[str, str] = {}
    fallbacks: list[ToolSpec] = []
    for spec in specs:
        if wanted is not None and spec.name not in wanted:
            continue
        if spec.fallback_for:
            fallbacks.append(spec)
            continue
        _build(spec, ctx, tools, dropped)
    for spec in fallbacks:
        if all(name not in tools for name in spec.fallback_for):
            _build(spec, ctx, tools, dropped)
            if spec.name in tools:
                for name in spec.fallback_for:
                    if name in dropped:
                        dropped[name] += f" ({spec.name} is used instead)"
    return tools, dropped


def _build(spec: ToolSpec, ctx: "ToolContext", tools: dict[str, BaseTool], dropped: dict[str, str]) -> None:
    try:
        reason = spec.probe(ctx)
        if reason is None:
            tools[spec.name] = spec.factory(ctx)
            return
    except VlagentError as exc:
        reason = str(exc)
    dropped[spec.name] = reason


def prepare(
    specs: Mapping[str, ToolSpec], ctx: "ToolContext", tools: Mapping[str, BaseTool], calls: Sequence[tuple[str, dict[str, Any]]]
) -> dict[str, int]:
    """Run each tool's batch ``prepare`` hook over all its planned calls: {tool: items done}."""
    by_tool: dict[str, list[dict[str, Any]]] = {}
    for name, args in calls:
        by_tool.setdefault(name, []).append(args)
    done: dict[str, int] = {}
    for name, args_list in by_tool.items():
        spec = specs.get(name)
        if spec is not None and spec.prepare is not None and name in tools:
            done[name] = spec.prepare(ctx, tools[name], args_list)
    return done


__all__ = ["BUILTIN_MODULES", "build_tools", "builtin_tools", "plugin_cards", "plugin_tools", "prepare", "probe_all"]
