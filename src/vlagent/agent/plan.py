"""The plan as data: question type → the tool calls that answer it.

The table is the agent spec's (:attr:`vlagent.agent.spec.AgentSpec.plan`: each card's ``plan``,
then the calls the tools add). The plan node (:mod:`vlagent.agent.graph`) asks :func:`calls_for`
for each round's calls, and ``VLAgent.prepare`` walks the same table to batch work before a
harness run. A :class:`~vlagent.agent.calls.Call` names a tool (or alternatives: the first one
usable here), its arguments, which images it takes (the spec's default unless given), and when
it applies. Round 1 calls see the round 0 results (the OCR prompt sends the text OCR read to the VLM).
"""

from __future__ import annotations

from typing import Any

from vlagent.agent.calls import PlanInput, argument
from vlagent.agent.spec import AgentSpec


def calls_for(spec: AgentSpec, qtype: str, round_: int, inp: PlanInput) -> list[tuple[str, dict[str, Any]]]:
    """The (tool, arguments) pairs of one round, for the tools usable here."""
    out: list[tuple[str, dict[str, Any]]] = []
    for call in spec.plan.get(qtype, ()):
        if call.round != round_ or (call.when is not None and not call.when(inp)):
            continue
        name = next((t for t in call.tools if t in inp.available), None)
        tool = spec.tool(name) if name else None
        if tool is None:
            continue
        args = {k: argument(v, inp) for k, v in call.args.items()}
        mode = call.images or tool.images
        images = inp.images[: call.limit] if call.limit else list(inp.images)
        arg = tool.image_arg
        if mode == "none" or arg is None:
            out.append((tool.name, args))
        elif not images:
            continue  # an image tool with no image to look at
        elif mode == "each" or (mode == "first" and arg == "image"):
            targets = images if mode == "each" else images[:1]
            for image in targets:
                out.append((tool.name, {arg: [image] if arg == "images" else image, **args}))
        else:  # "all", or "first" for a tool that takes a list
            out.append((tool.name, {arg: images if mode == "all" else images[:1], **args}))
    return out


__all__ = ["calls_for"]
