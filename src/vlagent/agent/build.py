"""Assemble the agent: settings → LLM, tools, classifier, checkpointer → compiled graph."""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from vlagent.agent.calls import PlanInput
from vlagent.agent.graph import build_graph
from vlagent.agent.plan import calls_for
from vlagent.agent.questions import QuestionCard
from vlagent.agent.registry import build_tools, prepare
from vlagent.agent.spec import build_spec
from vlagent.agent.state import STATE_TYPES, AgentParts, AgentState
from vlagent.agent.toolspec import ToolSpec
from vlagent.agent.types import Answer, AnswerError, Intent, RetrievedImage, ToolTrace
from vlagent.agent.understand import Understander, default_type
from vlagent.data.annotations import Annotation, read_annotations, usable_rows
from vlagent.data.queries import check_question
from vlagent.enrich.categories import read_categories
from vlagent.errors import VlagentError
from vlagent.models.context import ToolContext
from vlagent.models.llm import build_chat_model
from vlagent.models.selfcheck import ensure_llm_runs
from vlagent.settings import Settings

log = logging.getLogger(__name__)


class VLAgent:
    """The compiled LangGraph agent with a typed ``invoke`` and ``stream``."""

    def __init__(
        self, graph: Any, parts: AgentParts, ctx: ToolContext | None = None, question_max_chars: int | None = None
    ) -> None:
        self.graph = graph
        self.parts = parts
        self.spec = parts.spec
        self.ctx = ctx
        #: longer questions are refused before any work (``Settings.question_max_chars``)
        limit = parts.spec.settings.question_max_chars
        self.question_max_chars = limit if question_max_chars is None else question_max_chars

    def _input(self, question: str | dict[str, Any], images: list[str] | None) -> dict[str, Any]:
        if isinstance(question, dict):
            data = dict(question)
        else:
            data = {"question": question}
        if images is not None:
            data["images"] = images
        imgs = data.get("images") or []
        if isinstance(imgs, str):
            imgs = [p.strip() for p in imgs.replace("，", ",").split(",") if p.strip()]
        question_text = check_question(str(data.get("question") or ""), self.question_max_chars)
        return {"question": question_text, "images": [str(i) for i in imgs]}

    @staticmethod
    def _config(config: dict[str, Any] | None, thread_id: str | None) -> tuple[dict[str, Any], bool]:
        config = dict(config or {})
        configurable = dict(config.get("configurable") or {})
        ephemeral = False
        if thread_id:
            configurable["thread_id"] = thread_id
        if "thread_id" not in configurable:
            configurable["thread_id"] = f"ephemeral-{uuid.uuid4().hex}"
            ephemeral = True
        config["configurable"] = configurable
        return config, ephemeral

    def invoke(
        self,
        question: str | dict[str, Any],
        config: dict[str, Any] | None = None,
        *,
        images: list[str] | None = None,
        thread_id: str | None = None,
    ) -> Answer:
        """Answer one question. Pass a ``thread_id`` (or ``config={"configurable": {"thread_id": ...}}``)
        to keep a conversation; without one each call stands alone. An empty question, or one
        longer than ``question_max_chars``, raises before any work (``QuestionTooLongError``)."""
        config, ephemeral = self._config(config, thread_id)
        state = self.graph.invoke(self._input(question, images), config)
        if ephemeral:
            self.forget(config["configurable"]["thread_id"])
        return self.to_answer(state)

    def stream(
        self,
        question: str | dict[str, Any],
        config: dict[str, Any] | None = None,
        *,
        images: list[str] | None = None,
        thread_id: str | None = None,
        stream_mode: str = "updates",
    ) -> Iterator[dict[str, Any]]:
        """Node updates as they happen (LangGraph ``stream_mode="updates"``)."""
        config, _ = self._config(config, thread_id)
        yield from self.graph.stream(self._input(question, images), config, stream_mode=stream_mode)

    def prepare(self, items: list[dict[str, Any]]) -> dict[str, int]:
        """Batch the work many questions share, before answering them one by one (the harness).

        Walks the plan table (round 0) for every item, understood by the learned classifier alone
        (fast, no LLM; the graph still reads each question), and runs each tool's batch hook over all its calls:
        retrieval texts are encoded in batches, captions generated in batches into the cache the
        tools read. Returns {tool: items prepared}."""

        if self.ctx is None:
            return {}
        calls: list[tuple[str, dict[str, Any]]] = []
        available = frozenset(self.parts.tools)
        for item in items:
            images = [str(i) for i in item.get("images") or []]
            question = str(item.get("question", ""))
            c = self.parts.classifier(question, images, None).classification
            inp = PlanInput(question=question, images=images, language=c.language, query=c.query, available=available)
            calls += calls_for(self.spec, c.type, 0, inp)
        return prepare(self.spec.tool_map, self.ctx, self.parts.tools, calls)

    def state(self, thread_id: str) -> AgentState:
        return self.graph.get_state({"configurable": {"thread_id": thread_id}}).values

    def forget(self, thread_id: str) -> None:
        """Drop a conversation from the checkpointer (the harness answers each question in its own thread)."""
        saver = self.graph.checkpointer
        if saver is not None and hasattr(saver, "delete_thread"):
            try:
                saver.delete_thread(thread_id)
            except Exception:  # pragma: no cover - best effort
                pass

    def to_answer(self, state: dict[str, Any]) -> Answer:
        found = state.get("intent")
        intent = Intent.model_validate(found) if found else Intent(type=default_type(self.spec.cards), language="zh")
        return Answer(
            text=state.get("answer", ""),
            type=intent.type,
            language=intent.language,
            images=[
                RetrievedImage(image=h["image"], score=float(h["score"]), title=h.get("title", ""), by=str(h.get("by", "")))
                for h in state.get("retrieved", [])
            ],
            classifier=state.get("classifier", "learned"),
            trace=[ToolTrace.model_validate(t) for t in state.get("trace", [])],
            unavailable_tools=sorted(self.parts.unavailable),
            evidence=list(state.get("evidence") or []),
            error=AnswerError.model_validate(state["error"]) if state.get("error") else None,
        )

    @property
    def tool_names(self) -> list[str]:
        return sorted(self.parts.tools)


def state_serializer() -> JsonPlusSerializer:
    """The checkpointer's serializer, allowed to read back the state's own types."""
    return JsonPlusSerializer(allowed_msgpack_modules=[(t.__module__, t.__name__) for t in STATE_TYPES])


def make_checkpointer(settings: Settings) -> Any:
    if settings.checkpoint_path:
        from langgraph.checkpoint.sqlite import SqliteSaver

        path = Path(settings.checkpoint_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteSaver(sqlite3.connect(str(path), check_same_thread=False), serde=state_serializer())
    from langgraph.checkpoint.memory import InMemorySaver

    return InMemorySaver(serde=state_serializer())


def _load_llm(settings: Settings) -> tuple[BaseChatModel | None, str | None]:
    if settings.llm_backend == "none":
        return None, "VLAGENT_LLM_BACKEND=none"
    ensure_llm_runs(settings)  # an engine that crashes here stops the caller with one line
    try:
        return build_chat_model(settings), None
    except VlagentError as exc:
        return None, str(exc)


def title_hints(settings: Settings, titles: dict[str, str]) -> dict[str, str]:
    """The catalogue's titles, plus, for images with no title, their zero-shot category
    (``vlagent classify --images ... --out categories.csv``; setting ``categories_path``)."""
    if not settings.categories_path:
        return titles

    hints = dict(titles)
    for image, category in read_categories(settings.categories_path).items():
        hints.setdefault(image, f"{category}（零样本类别，不是商品标题 / zero-shot category, not a title）")
    return hints


def build_agent(
    settings: Settings | None = None,
    *,
    images: list[str | Path] | str | Path | None = None,
    annotations: str | Path | list[Annotation] | None = None,
    llm: BaseChatModel | None = None,
    classifier_llm: BaseChatModel | None = None,
    tools: list[BaseTool] | None = None,
    checkpointer: Any = None,
    auto_index: bool = True,
    use_cache: bool = True,
    allow_files: list[str | Path] | None = None,
    cards: Iterable[QuestionCard] = (),
    tool_specs: Iterable[ToolSpec] = (),
) -> VLAgent:
    """Build the agent from settings.

    Its spec (question cards, tool specs, settings) is assembled once here
    (:func:`vlagent.agent.spec.build_spec`: the built-ins, the installed plugins', then ``cards``
    and ``tool_specs``) and handed to every part.

    ``images``: the catalogue (image folders or zips) that image names resolve against and that
    retrieval searches (indexed at build time while the index holds fewer records than the
    catalogue has images; ``vlagent index`` refreshes changed files). ``annotations``: its
    ``train_annotation.csv``. ``llm``/``tools``: override what settings would build (tests).
    ``allow_files``: image files named explicitly (``ask --image``) that may be read besides the
    catalogue and ``settings.image_roots``; other paths are refused (``ImageNotAllowedError``).
    """
    settings = settings or Settings()
    spec = build_spec(settings, cards=cards, tools=tool_specs)
    if isinstance(images, (str, Path)):
        images = [images]
    image_paths = [Path(p) for p in images or []]
    rows = annotations if isinstance(annotations, list) else (read_annotations(annotations) if annotations else [])
    ctx = ToolContext.from_settings(
        settings, list(image_paths), use_cache=use_cache, allow_files=allow_files, auto_index=auto_index
    )
    ctx.annotations = usable_rows(rows, ctx.resolver.sources)  # rows whose image is missing never become candidates
    unavailable: dict[str, str] = {}
    if llm is None:
        llm, why = _load_llm(settings)
        if why:
            unavailable["llm"] = why
    if tools is None:
        built, dropped = build_tools(spec.tools, ctx)
        tools = list(built.values())
        unavailable.update(dropped)
    for name, why in unavailable.items():
        log.warning("%s unavailable: %s", name, why)
    parts = AgentParts(
        spec=spec,
        tools={t.name: t for t in tools},
        llm=llm,
        classifier=Understander(settings, cards=spec.cards),
        classifier_llm=classifier_llm if classifier_llm is not None else llm,
        titles=title_hints(settings, ctx.titles),
        unavailable=unavailable,
    )
    graph = build_graph(parts, checkpointer or make_checkpointer(settings))
    return VLAgent(graph, parts, ctx, question_max_chars=settings.question_max_chars)
