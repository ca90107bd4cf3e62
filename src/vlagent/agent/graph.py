"""The LangGraph agent: start → classify → plan ⇄ tools → answer.

* ``classify``: the LLM classifies the question with structured output (rules as fallback); it
  sees image names, never file-system paths;
* ``plan``: reads the plan table (:mod:`vlagent.agent.plan`) and emits the round's tool calls (an
  ``AIMessage`` with ``tool_calls``): one round, or two for OCR questions (OCR first, then the
  VLM with the text as context);
* ``tools``: LangGraph's ``ToolNode`` runs them (in parallel);
* ``answer``: puts each result in the template field its tool's spec names (the registry,
  :mod:`vlagent.agent.registry`), records the evidence, and answers: with an error naming the
  image and the reason when every tool the question needed failed (the LLM is never asked to
  guess); with the facts themselves when they settle the question or show that nothing here can
  (:func:`vlagent.agent.facts.decide`: the evidence then lists ``missing[...]``); else by rendering
  ``prompts/<type>.<lang>.txt`` and asking the LLM.

Memory across turns comes from the checkpointer (thread id): the state keeps ``history`` and
``last_images``, so a follow-up without an image ("那它是什么颜色的？") uses the previous one.
"""

from __future__ import annotations

import logging
import operator
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, RemoveMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import REMOVE_ALL_MESSAGES, add_messages
from langgraph.prebuilt import ToolNode

from vlagent.agent import facts
from vlagent.agent.plan import PlanInput, calls_for
from vlagent.agent.plan import rounds as plan_rounds
from vlagent.agent.prompts import fill, render_messages
from vlagent.agent.rules import asks_to_transcribe
from vlagent.agent.types import AnswerError, Classification, ClassifierResult, QuestionType
from vlagent.errors import ImageError, one_line
from vlagent.agent.registry import fields as tool_fields
from vlagent.agent.registry import get_spec

log = logging.getLogger(__name__)


class AgentState(TypedDict, total=False):
    question: str
    images: list[str]  # attached to this turn
    turn_images: list[str]  # what this turn works on (attached, or the previous turn's)
    last_images: list[str]  # memory for the next turn
    classification: dict[str, Any]
    classifier: str
    classifier_error: str | None
    messages: Annotated[list[AnyMessage], add_messages]  # this turn's tool calls and results
    rounds: int
    answer: str
    retrieved: list[dict[str, Any]]
    trace: list[dict[str, Any]]
    history: Annotated[list[dict[str, Any]], operator.add]
    evidence: list[str]  # the tool results the answer used
    error: dict[str, Any] | None  # AnswerError when no answer could be given from evidence


def timed(tool: BaseTool) -> BaseTool:
    """The same tool, recording duration and ok/error in its artifact instead of raising."""

    def run(**kwargs: Any) -> tuple[str, dict[str, Any]]:
        start = time.perf_counter()
        try:
            msg = tool.invoke({"type": "tool_call", "name": tool.name, "args": kwargs, "id": "inner"})
        except Exception as exc:  # the graph goes on; the trace says what failed
            reason = one_line(exc, 500)
            return f"error: {reason}", {
                "ok": False, "error": reason, "duration_s": time.perf_counter() - start,
                "image_error": isinstance(exc, ImageError),
            }  # fmt: skip
        content = msg.content if isinstance(msg, ToolMessage) else str(msg)
        artifact = msg.artifact if isinstance(msg, ToolMessage) else None
        return str(content), {
            "ok": True, "output": artifact, "duration_s": time.perf_counter() - start,
        }  # fmt: skip

    return StructuredTool.from_function(
        run,
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        response_format="content_and_artifact",
    )


Classifier = Callable[[str, list[str], BaseChatModel | None], ClassifierResult]


@dataclass
class AgentParts:
    """What the graph is made of (built by :func:`vlagent.agent.build.build_agent`)."""

    tools: dict[str, BaseTool]
    llm: BaseChatModel | None
    classifier: Classifier
    classifier_llm: BaseChatModel | None = None
    titles: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


def _lang(state: AgentState) -> str:
    return str(state.get("classification", {}).get("language", "zh"))


def _tool_results(state: AgentState) -> list[tuple[str, dict[str, Any], ToolMessage]]:
    """(tool name, args, result message) for every tool call of this turn."""
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    out = []
    for msg in state.get("messages", []):
        if isinstance(msg, AIMessage):
            for tc in msg.tool_calls:
                calls[tc["id"]] = (tc["name"], tc["args"])
        elif isinstance(msg, ToolMessage) and msg.tool_call_id in calls:
            name, args = calls[msg.tool_call_id]
            out.append((name, args, msg))
    return out


def _ok(msg: ToolMessage) -> bool:
    return isinstance(msg.artifact, dict) and bool(msg.artifact.get("ok"))


def build_graph(parts: AgentParts, checkpointer: Any = None) -> Any:
    tool_list = [timed(t) for t in parts.tools.values()]

    def start(state: AgentState) -> dict[str, Any]:
        images = list(state.get("images") or [])
        return {
            "turn_images": images or list(state.get("last_images") or []),
            "messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES)],
            "rounds": 0, "answer": "", "retrieved": [], "trace": [], "classifier_error": None,
            "evidence": [], "error": None,
        }  # fmt: skip

    def classify(state: AgentState) -> dict[str, Any]:
        t0 = time.perf_counter()
        images = state.get("turn_images", [])
        # the classifier (an LLM) sees image names, never file-system paths
        result = parts.classifier(state["question"], [display_name(i) for i in images], parts.classifier_llm)
        c = result.classification
        turn_images = images or [i for i in c.images if i]
        entry = {
            "name": "classify", "args": {"question": state["question"], "images": images},
            "duration_s": time.perf_counter() - t0, "ok": result.error is None,
            "error": result.error, "output": {**c.model_dump(mode="json"), "source": result.source},
        }  # fmt: skip
        return {
            "classification": c.model_dump(mode="json"),
            "classifier": result.source,
            "classifier_error": result.error,
            "turn_images": turn_images,
            "trace": [entry],
        }

    def plan(state: AgentState) -> dict[str, Any]:
        rounds = state.get("rounds", 0)
        c = Classification.model_validate(state["classification"])
        calls: list[tuple[str, dict[str, Any]]] = []
        if rounds < plan_rounds(c.type):
            earlier: dict[str, list[str]] = {}
            for name, _, m in _tool_results(state):
                if _ok(m):
                    earlier.setdefault(name, []).append(str(m.content))
            inp = PlanInput(
                question=state["question"], images=list(state.get("turn_images", [])), language=c.language,
                query=c.query, available=frozenset(parts.tools), results=earlier,
            )  # fmt: skip
            calls = calls_for(c.type, rounds, inp)
        if not calls:
            return {"rounds": rounds + 1}
        msg = AIMessage(
            content="",
            tool_calls=[
                {"name": name, "args": args, "id": f"call-{rounds}-{n}-{name}", "type": "tool_call"}
                for n, (name, args) in enumerate(calls)
            ],
        )
        return {"messages": [msg], "rounds": rounds + 1}

    def after_plan(state: AgentState) -> str:
        msgs = state.get("messages", [])
        pending = msgs and isinstance(msgs[-1], AIMessage) and msgs[-1].tool_calls
        return "tools" if pending else "answer"

    def answer(state: AgentState) -> dict[str, Any]:
        return _answer(parts, state)

    graph = StateGraph(AgentState)
    graph.add_node("start", start)
    graph.add_node("classify", classify)
    graph.add_node("plan", plan)
    graph.add_node("tools", ToolNode(tool_list, handle_tool_errors=True) if tool_list else (lambda s: {}))
    graph.add_node("answer", answer)
    graph.add_edge(START, "start")
    graph.add_edge("start", "classify")
    graph.add_edge("classify", "plan")
    graph.add_conditional_edges("plan", after_plan, {"tools": "tools", "answer": "answer"})
    graph.add_edge("tools", "plan")
    graph.add_edge("answer", END)
    return graph.compile(checkpointer=checkpointer)


def _history_text(state: AgentState, lang: str, turns: int = 3) -> str:
    lines = []
    for turn in state.get("history", [])[-turns:]:
        who_q, who_a = ("用户", "助手") if lang == "zh" else ("User", "Assistant")
        lines.append(f"{who_q}: {turn['question']}\n{who_a}: {turn['answer']}")
    return "\n".join(lines)


def _answer(parts: AgentParts, state: AgentState) -> dict[str, Any]:
    c = Classification.model_validate(state["classification"])
    lang = c.language
    images = state.get("turn_images", [])
    results = _tool_results(state)
    trace = list(state.get("trace", []))
    values: dict[str, list[str]] = {k: [] for k in tool_fields()}
    # which tools are missing, in plain words: the reason ("VLAGENT_CAPTION_BACKEND=none") is for
    # the trace and the log; a small answer LLM copied it into descriptions as if it were a fact
    notes = [f"{name}：不可用" if lang == "zh" else f"no {name} tool here" for name in parts.unavailable]
    retrieved: list[dict[str, Any]] = []
    evidence: list[str] = []
    failures: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    multi = len({args.get("image") for name, args, _ in results if "image" in args}) > 1
    for name, args, msg in results:
        art = msg.artifact if isinstance(msg.artifact, dict) else {}
        trace.append({
            "name": name, "args": args, "duration_s": float(art.get("duration_s", 0.0)),
            "ok": bool(art.get("ok", msg.status != "error")),
            "error": art.get("error") or (str(msg.content) if msg.status == "error" else None),
            "output": art.get("output"),
        })  # fmt: skip
        if not trace[-1]["ok"]:
            notes.append(f"{name} failed: {without_paths(str(trace[-1]['error']))}")
            failures.append((name, args, {**art, "error": trace[-1]["error"]}))
            continue
        evidence.append(evidence_id(name, args))
        spec = get_spec(name)
        if spec is None or spec.field is None:
            continue
        # the tool's one-line fact in the question's language where its spec asks for it
        # (colours: "mainly white, also grey"; the raw line's percentages were copied into answers)
        wants = spec.summarize and spec.summary_in_template and art.get("output")
        summary = spec.summarize(art.get("output"), lang) if wants else ""
        text = summary.strip() or str(msg.content).strip()
        if spec.retrieves:
            retrieved = list(art.get("output") or [])
        if spec.keep == "last":  # e.g. the VLM's answer given the OCR text replaces its first one
            values[spec.field] = [text]
        else:
            prefix = f"[{display_name(args['image'])}] " if multi and spec.per_image and "image" in args else ""
            values.setdefault(spec.field, []).append(prefix + text)
    turn = {"question": state["question"], "images": images, "type": c.type.value}
    error = no_evidence_error(c.type, images, results, evidence, failures, parts.unavailable)
    if error is not None:  # nothing to answer from: say why, never let the LLM guess
        trace.append({"name": "no_evidence", "args": {}, "ok": False, "error": error.line(), "duration_s": 0.0})
        return {
            "answer": "", "retrieved": [], "trace": trace, "evidence": [], "error": error.model_dump(),
            "history": [{**turn, "answer": ""}], "last_images": images,
        }  # fmt: skip
    image_titles = [parts.titles.get(i) or parts.titles.get(display_name(i), "") for i in images]
    evidence += [f"title[{display_name(i)}]" for i, t in zip(images, image_titles) if t]
    titles = image_titles
    if len(images) > 1:  # which title belongs to which image
        titles = [f"[{display_name(i)}] {t}" for i, t in zip(images, image_titles) if t]
    filled = {k: "\n".join(v) for k, v in values.items()}
    filled.update(
        question=state["question"], history=_history_text(state, lang),
        title="；".join(t for t in titles if t), notes="; ".join(notes), query=c.query or state["question"],
        best=retrieved[0]["image"] if retrieved else NO_RESULT[lang],
    )  # fmt: skip
    transcript = " ".join(" ".join(values.get("ocr_text", [])).split())
    decided: facts.Decision | None = None
    per_image: list[facts.ImageFacts] = []
    shared: dict[str, str] = {}
    if c.type in FACT_TYPES:
        per_image, shared = _facts(images, image_titles, results, lang)
        filled["facts"] = facts.render(per_image, shared, lang)
        decided = facts.decide(c.type, state["question"], per_image, shared, lang)
    if c.type in LIST_TYPES:  # a ranked list with one line per item: no LLM rewrites it
        text = fill(c.type, lang, filled)[1]
    elif c.type is QuestionType.ocr and transcript and asks_to_transcribe(state["question"]):
        text = transcript  # "what does it say?": the text as read; an LLM would only shorten it
    elif decided is not None:  # the facts settle it (or show that nothing here can): state them, no LLM
        text = decided.text
        if decided.missing:  # what the answer lacked: no image had these facts
            evidence.append(f"missing[{','.join(decided.missing)}]")
        trace.append({
            "name": "facts", "args": {"type": c.type.value, "missing": decided.missing}, "ok": True,
            "duration_s": 0.0, "output": text,
        })  # fmt: skip
    else:
        text, entry = _ask_llm(parts.llm, c.type, lang, filled)
        trace.append(entry)
        if text is None:  # no LLM (or it failed): an answer from the facts, else the tool results
            from_facts = facts.fallback(c.type, state["question"], per_image, shared, lang) if c.type in FACT_TYPES else None
            text = from_facts or fallback_answer(c.type, lang, filled)
    return {
        "answer": text, "retrieved": retrieved, "trace": trace, "evidence": evidence, "error": None,
        "history": [{**turn, "answer": text}], "last_images": images,
    }  # fmt: skip


def _facts(
    images: list[str], titles: list[str], results: list[tuple[str, dict[str, Any], ToolMessage]], lang: str
) -> tuple[list[facts.ImageFacts], dict[str, str]]:
    """Each image's facts (its title, then each per-image tool's summary), and the shared answers."""
    per_image = [facts.ImageFacts(name=display_name(i)) for i in images]
    by_name = {i: f for i, f in zip(images, per_image)}
    for f, title in zip(per_image, titles):
        f.add("title", title)
    shared: dict[str, str] = {}
    for name, args, msg in results:
        spec = get_spec(name)
        art = msg.artifact if isinstance(msg.artifact, dict) else {}
        if spec is None or spec.field is None or not art.get("ok"):
            continue
        output = art.get("output")
        text = spec.summarize(output, lang) if spec.summarize else str(msg.content).strip()
        target = by_name.get(str(args.get("image"))) if spec.per_image else None
        if target is None:
            shared[spec.field] = text  # about all images at once (the VLM), the last one wins
            continue
        target.add(spec.field, text)
        if spec.field == "colors" and output and target.main_color is None:
            top = output[0]
            target.main_color = (str(top.get("name_zh", "")), str(top.get("name_en", "")))
            target.colours = [dict(c) for c in output if isinstance(c, dict)]
    return per_image, shared


#: answers that are the tool's ranked list, put in their template as they are
LIST_TYPES = (QuestionType.retrieve, QuestionType.recommend)
#: types whose answer is written from the per-image facts (and decided by them when they settle it)
FACT_TYPES = (QuestionType.describe, QuestionType.compare, QuestionType.vqa)
IMAGE_TYPES = (QuestionType.describe, QuestionType.vqa, QuestionType.ocr, QuestionType.compare)


def display_name(image: str) -> str:
    """What the LLM and the trace call an image: its base name, never a file-system path."""
    return image.replace("\\", "/").rsplit("/", 1)[-1]


_PATH = re.compile(r"(?<![\w:/.\\])(?:[A-Za-z]:)?(?:[\\/][^\s\\/:;,()'\"]+)+[\\/]?")  # not URLs


def without_paths(text: str) -> str:
    """``/data/shop/x.jpg: image not found`` → ``x.jpg: image not found``: what the LLM may read."""
    return _PATH.sub(lambda m: display_name(m.group(0).rstrip("/\\")) or "…", text)


def evidence_id(name: str, args: dict[str, Any]) -> str:
    """``ocr[label.jpg]``, ``vqa[a.jpg,b.jpg]``, ``clip_search``: which tool result an answer used."""
    imgs = [args["image"]] if "image" in args else list(args.get("images") or [])
    return f"{name}[{','.join(display_name(str(i)) for i in imgs)}]" if imgs else name


def no_evidence_error(
    qtype: QuestionType,
    images: list[str],
    results: list[tuple[str, dict[str, Any], ToolMessage]],
    evidence: list[str],
    failures: list[tuple[str, dict[str, Any], dict[str, Any]]],
    unavailable: dict[str, str],
) -> AnswerError | None:
    """The error to answer with when the tools the question needs gave nothing; else None."""
    if qtype is QuestionType.chat or evidence:
        return None
    if qtype in IMAGE_TYPES and not images:
        return AnswerError(kind="image", reason=f"a {qtype.value} question needs an image, and none was given")
    if failures:
        image_failures = [(args, art) for _, args, art in failures if art.get("image_error")]
        if image_failures:
            args, art = image_failures[0]
            image = args.get("image") or (args.get("images") or [None])[0]
            return AnswerError(kind="image", image=display_name(str(image)) if image else None, reason=str(art["error"]))
        why = "; ".join(f"{name}: {art['error']}" for name, _, art in failures)
        return AnswerError(kind="no_evidence", image=display_name(images[0]) if images else None, reason=f"every tool failed ({why})")
    if not results:
        why = "; ".join(f"{n}: {w}" for n, w in unavailable.items()) or "none is registered"
        what = "search the catalogue" if qtype in (QuestionType.retrieve, QuestionType.recommend) else "read the image"
        return AnswerError(
            kind="no_evidence", image=display_name(images[0]) if images else None,
            reason=f"no tool that can {what} is available here ({why})",
        )  # fmt: skip
    return None


NO_RESULT = {"zh": "（没有找到图片）", "en": "(no image found)"}


def _ask_llm(
    llm: BaseChatModel | None, qtype: QuestionType, lang: str, values: dict[str, str]
) -> tuple[str | None, dict[str, Any]]:
    entry: dict[str, Any] = {"name": "answer_llm", "args": {"template": f"{qtype.value}.{lang}"}}
    if llm is None:
        entry.update(ok=False, error="no LLM configured", duration_s=0.0)
        return None, entry
    t0 = time.perf_counter()
    try:
        reply = llm.invoke(render_messages(qtype, lang, values))  # type: ignore[arg-type]
        text = str(reply.content).strip()
        entry.update(ok=bool(text), error=None if text else "empty reply")
    except Exception as exc:
        text = ""
        entry.update(ok=False, error=one_line(exc))
    entry["duration_s"] = time.perf_counter() - t0
    return (text or None), entry


#: which template fields a fallback answer (no LLM) takes, best first; other tools' fields follow
FALLBACK_FIELDS: dict[QuestionType, tuple[str, ...]] = {
    QuestionType.ocr: ("ocr_text", "vqa"),
    QuestionType.vqa: ("vqa", "title", "caption", "ocr_text", "colors"),  # a colour question is decided by the facts
    QuestionType.describe: ("vqa", "caption", "title", "colors", "ocr_text"),
    QuestionType.compare: ("vqa", "colors", "caption"),
    QuestionType.recommend: ("results",),
}
#: types whose fallback is the single best source (a detail), not all of them combined
SINGLE_SOURCE = (QuestionType.ocr, QuestionType.vqa)


def fallback_answer(qtype: QuestionType, lang: str, values: dict[str, str]) -> str:
    """An answer from the tool results alone, when the LLM is unavailable or failed."""
    if qtype is QuestionType.chat:
        return (
            "我是商品图片问答助手：可以描述图片、按标题找图、推荐相似商品、回答颜色面料等问题、读取标签文字。"
            if lang == "zh"
            else "I answer questions about product images: describe, find by title, recommend similar items, "
            "colours, fabric, label text."
        )
    order = FALLBACK_FIELDS.get(qtype, ())
    order += tuple(f for f in tool_fields() if f not in order and f != "results")
    parts = [values[k].strip() for k in order if values.get(k, "").strip()]
    if parts:  # a detail question takes the best single source; descriptions combine them
        return parts[0] if qtype in SINGLE_SOURCE else "\n".join(parts)
    return "无法回答：没有可用的信息。" if lang == "zh" else "Cannot answer: no information available."
