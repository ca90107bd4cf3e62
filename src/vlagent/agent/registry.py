"""Every tool the agent can call, declared once (:class:`~vlagent.agent.toolspec.ToolSpec`).

The built-in tool modules each end with ``SPECS = [...]``; the registry imports them by module
name from :data:`BUILTIN_MODULES`, then any ``vlagent.tools`` entry point of an installed package
(a plugin's ``register`` hook or spec list). Nothing outside this module imports a tool module.

Public API::

    register_tool(spec, plan={QuestionType.vqa: [Call("toy")]})   # a new tool, and when to call it
    unregister_tool("toy")
    tool_specs()          # every spec, in registration order
    get_spec("ocr")
    probe_all(ctx)        # {name: None | reason}, no weights loaded
    build_tools(ctx)      # ({name: BaseTool} usable here, {name: reason} dropped)
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from langchain_core.tools import BaseTool

from vlagent.errors import VlagentError, one_line
from vlagent.agent.toolspec import ToolSpec

if TYPE_CHECKING:  # pragma: no cover
    from vlagent.agent.types import QuestionType
    from vlagent.models.context import ToolContext

log = logging.getLogger(__name__)

#: The built-in tools, in the order the agent lists them. They are loaded by module name with
#: importlib, as plugins are from their entry points: a tool module sits above the agent (it imports
#: the engines and this registry's ToolSpec), so the registry never imports one statically.
BUILTIN_MODULES = (
    "vlagent.tools.ocr",
    "vlagent.tools.colors",
    "vlagent.tools.caption",
    "vlagent.tools.vqa",
    "vlagent.tools.retrieval",
    "vlagent.tools.recommend",
    "vlagent.tools.match",
)
ENTRY_POINT_GROUP = "vlagent.tools"

_SPECS: dict[str, ToolSpec] = {}
_LOCK = threading.RLock()
_loaded = False


def _load_builtins() -> None:
    global _loaded
    with _LOCK:
        if _loaded:
            return
        _loaded = True
        for module in BUILTIN_MODULES:
            for spec in getattr(importlib.import_module(module), "SPECS", ()):
                _SPECS.setdefault(spec.name, spec)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                hook = ep.load()
                specs = hook() if callable(hook) else hook
                for spec in specs or ():
                    register_tool(spec)
            except Exception as exc:  # a broken plugin must not break the agent
                log.warning("tool plugin %s not loaded: %s", ep.name, one_line(exc))


#: The plan's table edits, ``(add_calls, remove_calls)``: :mod:`vlagent.agent.plan` connects them
#: when it loads (the plan reads the registry; the registry never imports the plan). Edits made
#: before that wait in ``_plan_pending``, in order.
_plan_hooks: tuple[Callable[[Any, Sequence[Any]], None], Callable[[str], None]] | None = None
_plan_pending: list[tuple[str, Mapping[Any, Sequence[Any]] | None]] = []


def connect_plan(add_calls: Callable[[Any, Sequence[Any]], None], remove_calls: Callable[[str], None]) -> None:
    """Called once by the plan module: from now on tool (un)registrations edit its table."""
    global _plan_hooks
    with _LOCK:
        _plan_hooks = (add_calls, remove_calls)
        pending, _plan_pending[:] = list(_plan_pending), []
        for name, plan in pending:
            _edit_plan(name, plan)


def _edit_plan(name: str, plan: Mapping[Any, Sequence[Any]] | None) -> None:
    """Drop the calls of ``name``, then add ``plan``'s (None: only drop them)."""
    if _plan_hooks is None:
        _plan_pending.append((name, plan))
        return
    add_calls, remove_calls = _plan_hooks
    remove_calls(name)
    for qtype, calls in (plan or {}).items():
        add_calls(qtype, calls)


def register_tool(spec: ToolSpec, plan: Mapping["QuestionType", Sequence[Any]] | None = None) -> ToolSpec:
    """Add a tool (replacing one of the same name) and, optionally, the calls the plan makes of it.

    With ``plan``, those calls replace the plan's earlier calls of this tool; without it, a
    replaced tool keeps the calls the plan already makes of it."""
    _load_builtins()
    with _LOCK:
        _SPECS[spec.name] = spec
        if plan is not None:
            _edit_plan(spec.name, plan)
    return spec


def unregister_tool(name: str) -> None:
    with _LOCK:
        _SPECS.pop(name, None)
        _edit_plan(name, None)


def tool_specs() -> list[ToolSpec]:
    _load_builtins()
    with _LOCK:
        return list(_SPECS.values())


def get_spec(name: str) -> ToolSpec | None:
    _load_builtins()
    return _SPECS.get(name)


def fields() -> list[str]:
    """The template fields the tools fill, in registration order."""
    return list(dict.fromkeys(s.field for s in tool_specs() if s.field))


def probe_all(ctx: "ToolContext") -> dict[str, str | None]:
    """{tool name: None if usable else the reason} without loading any model."""
    out: dict[str, str | None] = {}
    for spec in tool_specs():
        try:
            out[spec.name] = spec.probe(ctx)
        except Exception as exc:  # noqa: BLE001 - a probe that breaks says why, once
            out[spec.name] = f"{spec.name}: probe failed ({one_line(exc)})"
    return out


def build_tools(
    ctx: "ToolContext", only: Iterable[str] | None = None
) -> tuple[dict[str, BaseTool], dict[str, str]]:
    """({name: tool} for the tools usable here, {name: one-line reason} for the others).

    A fallback tool (``fallback_for``) is built only when every tool it stands in for is missing."""
    wanted = set(only) if only is not None else None
    tools: dict[str, BaseTool] = {}
    dropped: dict[str, str] = {}
    fallbacks: list[ToolSpec] = []
    for spec in tool_specs():
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


def prepare(ctx: "ToolContext", tools: Mapping[str, BaseTool], calls: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, int]:
    """Run each tool's batch ``prepare`` hook over all its planned calls: {tool: items done}."""
    by_tool: dict[str, list[dict[str, Any]]] = {}
    for name, args in calls:
        by_tool.setdefault(name, []).append(args)
    done: dict[str, int] = {}
    for name, args_list in by_tool.items():
        spec = get_spec(name)
        if spec is not None and spec.prepare is not None and name in tools:
            done[name] = spec.prepare(ctx, tools[name], args_list)
    return done
