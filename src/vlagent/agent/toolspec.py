"""One declaration per tool: what the agent, the plan, the answer writer and the fakes need to know.

A tool module ends with ``SPECS = [ToolSpec(...)]``. The registry (:mod:`vlagent.agent.registry`)
collects them into the agent's spec (:mod:`vlagent.agent.spec`); nothing else imports a tool
module by name. A spec says:

* ``name`` / ``args``: the LangChain tool's name and its typed arguments (a pydantic model);
* ``factory(ctx) -> BaseTool``: builds the tool (may raise :class:`~vlagent.errors.VlagentError`:
  the tool is then dropped with that reason);
* ``probe(ctx) -> str | None``: can it run here? ``None`` or a one-line reason, without loading
  any weights (``vlagent models list`` and the agent's ``unavailable_tools`` show the reason);
* ``field``: the answer template field its result fills (``ocr_text``, ``colors``, ...);
* ``images``: which of the question's images it takes by default: ``none``, ``first``, ``each``
  (one call per image) or ``all`` (one call with the list, as ``images``);
* ``per_image``: its result is about one image (the answer names the image when there are several);
* ``keep``: ``all`` results of a turn go into the field, or only the ``last`` (a VLM answer given
  the OCR text replaces the first one);
* ``retrieves``: its artifact is a ranked list of images (``Answer.images``);
* ``fallback_for``: offered only when every one of these tools is unavailable;
* ``prepare(ctx, tool, calls) -> int``: optional batch work for many calls at once (the harness);
* ``summarize(artifact, lang) -> str``: optional short text of a result for the per-image facts
  (default: the tool's text output);
* ``summary_in_template``: the answer template's field gets that short text too, not the tool's
  text output (colours: "mainly white, also grey", where the raw line's percentages were copied
  into answers);
* ``fact``: what kind of fact about an image its result is, for the per-image facts
  (:mod:`vlagent.agent.facts`): ``read`` (text read off the image), ``seen`` (what a model says
  the image shows), ``answer`` (a vision model's answer about all the images), ``colours``
  (measured colours); None: a fact stated as it is (a plugin's);
* ``label``: {lang: the facts line's label} (``{"zh": "颜色", "en": "Colours"}``; default: the field);
* ``structured(artifact) -> dict``: optional structured facts of a result for the facts that
  decide answers (colours: ``{"main_color": (zh, en), "colours": [...]}``);
* ``calls``: {question type: the calls the plan makes of this tool for it}, added after the
  type's card's own calls (a plugin tool that the built-in cards do not name).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as _field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from vlagent.agent.calls import Call, ImagesMode

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.tools import BaseTool

    from vlagent.models.context import ToolContext

FactKind = Literal["read", "seen", "answer", "colours"]


def always_available(ctx: "ToolContext") -> str | None:  # noqa: ARG001 - the probe signature
    return None


@dataclass(frozen=True, eq=False)
class ToolSpec:
    name: str
    args: type[BaseModel]
    factory: Callable[["ToolContext"], "BaseTool"]
    probe: Callable[["ToolContext"], str | None] = always_available
    description: str = ""
    field: str | None = None
    images: ImagesMode = "first"
    per_image: bool = True
    keep: Literal["all", "last"] = "all"
    retrieves: bool = False
    role: str | None = None
    fallback_for: tuple[str, ...] = ()
    prepare: Callable[["ToolContext", "BaseTool", Sequence[dict[str, Any]]], int] | None = None
    summarize: Callable[[Any, str], str] | None = None
    summary_in_template: bool = False
    fact: FactKind | None = None
    label: Mapping[str, str] = _field(default_factory=dict)
    structured: Callable[[Any], dict[str, Any]] | None = None
    calls: Mapping[str, Sequence[Call]] = _field(default_factory=dict)

    @property
    def image_arg(self) -> str | None:
        """The argument that carries images: ``image`` (one), ``images`` (a list) or none."""
        fields = self.args.model_fields
        if "images" in fields:
            return "images"
        if "image" in fields:
            return "image"
        return None
