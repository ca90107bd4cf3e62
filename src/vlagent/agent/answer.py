"""The answer writer: a turn's tool results → the answer, by the question card's answer mode.

Each result goes into the template field its tool's spec names (the registry,
:mod:`vlagent.agent.registry`) and into the evidence. Then, in order:

* every tool the question needed failed (or none ran): an error naming the image and the
  reason (:func:`no_evidence_error`; the card's ``what_is_missing``), the LLM is never asked;
* ``list``: the card's template filled with the ranked list, no LLM;
* ``transcript``: the text as read, when the question asks to transcribe it (``cues.transcribe``);
* ``summary``: the card's ``summary_tool``'s one-line summary;
* ``facts``: the per-image facts (:mod:`vlagent.agent.facts`), stated when they settle the
  question (the intent's cues say what it asks: a colour, "which one"); an LLM answer to a
  colour question always carries the measured colour;
* otherwise the card's template (``prompts/<type>.<lang>.txt``) and the answer LLM; without an
  LLM (or when it fails) the facts' fallback, else :func:`fallback_answer` from the card's
  ``fallback_fields``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, ToolMessage

from vlagent.agent import facts
from vlagent.agent.names import display_name, evidence_id, without_paths
from vlagent.agent.prompts import fill, render_messages
from vlagent.agent.questions import QuestionCard, get_card
from vlagent.agent.state import AgentParts, AgentState
from vlagent.agent.types import AnswerError, Cues, QuestionType
from vlagent.errors import one_line
from vlagent.agent.registry import fields as tool_fields
from vlagent.agent.registry import get_spec, tool_specs

ToolResult = tuple[str, dict[str, Any], ToolMessage]
NO_RESULT = {"zh": "（没有找到图片）", "en": "(no image found)"}


def tool_results(state: AgentState) -> list[ToolResult]:
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


def ok(msg: ToolMessage) -> bool:
    return isinstance(msg.artifact, dict) and bool(msg.artifact.get("ok"))


@dataclass
class Collected:
    """A turn's tool results sorted for the answer."""

    values: dict[str, list[str]]
    notes: list[str]
    trace: list[dict[str, Any]]
    retrieved: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    failures: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)


def _trace_entry(name: str, args: dict[str, Any], msg: ToolMessage, art: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name, "args": args, "duration_s": float(art.get("duration_s", 0.0)),
        "ok": bool(art.get("ok", msg.status != "error")),
        "error": art.get("error") or (str(msg.content) if msg.status == "error" else None),
        "output": art.get("output"),
    }  # fmt: skip


def collect(parts: AgentParts, state: AgentState, results: list[ToolResult], lang: str) -> Collected:
    """Each result into the trace, its field (the spec's), the evidence, or the failures."""
    # which tools are missing, in plain words: the reason ("VLAGENT_CAPTION_BACKEND=none") is for
    # the trace and the log; a small answer LLM copied it into descriptions as if it were a fact
    notes = [f"{name}：不可用" if lang == "zh" else f"no {name} tool here" for name in parts.unavailable]
    got = Collected({k: [] for k in tool_fields()}, notes, list(state.get("trace", [])))
    multi = len({args.get("image") for name, args, _ in results if "image" in args}) > 1
    for name, args, msg in results:
        art = msg.artifact if isinstance(msg.artifact, dict) else {}
        entry = _trace_entry(name, args, msg, art)
        got.trace.append(entry)
        if not entry["ok"]:
            got.notes.append(f"{name} failed: {without_paths(str(entry['error']))}")
            got.failures.append((name, args, {**art, "error": entry["error"]}))
            continue
        got.evidence.append(evidence_id(name, args))
        spec = get_spec(name)
        if spec is None or spec.field is None:
            continue
        # the tool's one-line fact in the question's language where its spec asks for it
        # (colours: "mainly white, also grey"; the raw line's percentages were copied into answers)
        wants = spec.summarize and spec.summary_in_template and art.get("output")
        summary = spec.summarize(art.get("output"), lang) if wants else ""  # type: ignore[misc]
        text = summary.strip() or str(msg.content).strip()
        if spec.retrieves:
            got.retrieved = list(art.get("output") or [])
        if spec.keep == "last":  # e.g. the VLM's answer given the OCR text replaces its first one
            got.values[spec.field] = [text]
        else:
            prefix = f"[{display_name(args['image'])}] " if multi and spec.per_image and "image" in args else ""
            got.values.setdefault(spec.field, []).append(prefix + text)
    return got


def write_answer(parts: AgentParts, state: AgentState) -> dict[str, Any]:
    """The answer node's update: the answer (or the error), its evidence, trace and memory."""
    c = state["intent"]
    qtype, lang = QuestionType(c["type"]), str(c["language"])
    card = get_card(qtype)
    images = state.get("turn_images", [])
    results = tool_results(state)
    got = collect(parts, state, results, lang)
    turn = {"question": state["question"], "images": images, "type": qtype.value}
    error = no_evidence_error(card, images, results, got.evidence, got.failures, parts.unavailable)
    if error is not None:  # nothing to answer from: say why, never let the LLM guess
        got.trace.append({"name": "no_evidence", "args": {}, "ok": False, "error": error.line(), "duration_s": 0.0})
        return {
            "answer": "", "retrieved": [], "trace": got.trace, "evidence": [], "error": error.model_dump(),
            "history": [{**turn, "answer": ""}], "last_images": images,
        }  # fmt: skip
    image_titles = [parts.titles.get(i) or parts.titles.get(display_name(i), "") for i in images]
    got.evidence += [f"title[{display_name(i)}]" for i, t in zip(images, image_titles) if t]
    filled = template_values(state, got, images, image_titles, lang, str(c.get("query") or ""))
    cues = Cues.model_validate(c.get("cues") or {})
    text = by_mode(parts, card, cues, got, results, (images, image_titles), filled, lang)
    return {
        "answer": text, "retrieved": got.retrieved, "trace": got.trace, "evidence": got.evidence, "error": None,
        "history": [{**turn, "answer": text}], "last_images": images,
    }  # fmt: skip


def template_values(
    state: AgentState, got: Collected, images: list[str], image_titles: list[str], lang: str, query: str
) -> dict[str, str]:
    """The template's fields: each tool's, then the question, history, titles, notes, query, best."""
    titles = image_titles
    if len(images) > 1:  # which title belongs to which image
        titles = [f"[{display_name(i)}] {t}" for i, t in zip(images, image_titles) if t]
    filled = {k: "\n".join(v) for k, v in got.values.items()}
    filled.update(
        question=state["question"], history=history_text(state, lang),
        title="；".join(t for t in titles if t), notes="; ".join(got.notes), query=query or state["question"],
        best=got.retrieved[0]["image"] if got.retrieved else NO_RESULT[lang],
    )  # fmt: skip
    return filled


def by_mode(
    parts: AgentParts,
    card: QuestionCard,
    cues: Cues,
    got: Collected,
    results: list[ToolResult],
    seen: tuple[list[str], list[str]],
    filled: dict[str, str],
    lang: str,
) -> str:
    """The answer's text, by the card's answer mode (the module docstring's order). The question's
    words reach only the LLM's template; every decision here reads the intent's cues."""
    qtype = card.type
    decided: facts.Decision | None = None
    per_image: list[facts.ImageFacts] = []
    shared: dict[str, str] = {}
    if card.answer == "facts":
        per_image, shared = image_facts(seen[0], seen[1], results, lang)
        filled["facts"] = facts.render(per_image, shared, lang)
        decided = facts.decide(qtype, cues, per_image, shared, lang)
    transcript = " ".join(" ".join(got.values.get(facts.field_of("read"), [])).split())
    summary = tool_summary(card, results, lang) if card.answer == "summary" else ""
    if card.answer == "list":  # a ranked list with one line per item: no LLM rewrites it
        return fill(qtype, lang, filled)[1]  # type: ignore[arg-type]
    if card.answer == "transcript" and transcript and cues.transcribe:
        return transcript  # "what does it say?": the text as read; an LLM would only shorten it
    if summary:  # the tool's own verdict is the answer
        return summary
    if decided is not None:  # the facts settle it (or show that nothing here can): state them, no LLM
        if decided.missing:  # what the answer lacked: no image had these facts
            got.evidence.append(f"missing[{','.join(decided.missing)}]")
        got.trace.append({
            "name": "facts", "args": {"type": qtype.value, "missing": decided.missing}, "ok": True,
            "duration_s": 0.0, "output": decided.text,
        })  # fmt: skip
        return decided.text
    text, entry = ask_llm(parts.llm, qtype, lang, filled)
    got.trace.append(entry)
    if text is None:  # no LLM (or it failed): an answer from the facts, else the tool results
        from_facts = facts.fallback(qtype, cues, per_image, shared, lang) if card.answer == "facts" else None
        return from_facts or fallback_answer(card, lang, filled)
    return facts.keep_colour(text, cues, per_image, lang) if card.answer == "facts" else text


def tool_summary(card: QuestionCard, results: list[ToolResult], lang: str) -> str:
    """The last ok result of the card's ``summary_tool``, as its spec summarises it."""
    for name, _, msg in reversed(results):
        spec = get_spec(name)
        if name == card.summary_tool and spec is not None and ok(msg):
            output = msg.artifact.get("output")
            text = spec.summarize(output, lang) if spec.summarize else ""
            return (text or str(msg.content)).strip()
    return ""


def image_facts(
    images: list[str], titles: list[str], results: list[ToolResult], lang: str
) -> tuple[list[facts.ImageFacts], dict[str, str]]:
    """Each image's facts (its title, then each per-image tool's summary), and the shared answers."""
    per_image = [facts.ImageFacts(name=display_name(i)) for i in images]
    by_name = {i: f for i, f in zip(images, per_image)}
    for f, title in zip(per_image, titles):
        f.add(facts.TITLE, title)
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
        if spec.structured and output:
            target.measure(spec.structured(output))
    return per_image, shared


def history_text(state: AgentState, lang: str, turns: int = 3) -> str:
    lines = []
    for turn in state.get("history", [])[-turns:]:
        who_q, who_a = ("用户", "助手") if lang == "zh" else ("User", "Assistant")
        lines.append(f"{who_q}: {turn['question']}\n{who_a}: {turn['answer']}")
    return "\n".join(lines)


def no_evidence_error(
    card: QuestionCard,
    images: list[str],
    results: list[ToolResult],
    evidence: list[str],
    failures: list[tuple[str, dict[str, Any], dict[str, Any]]],
    unavailable: dict[str, str],
) -> AnswerError | None:
    """The error to answer with when the tools the question needs gave nothing; else None."""
    if not card.needs_evidence or evidence:
        return None
    first = display_name(images[0]) if images else None
    if card.needs_image and not images:
        return AnswerError(kind="image", reason=f"a {card.name} question needs an image, and none was given")
    if failures:
        image_failures = [(args, art) for _, args, art in failures if art.get("image_error")]
        if image_failures:
            args, art = image_failures[0]
            image = args.get("image") or (args.get("images") or [None])[0]
            return AnswerError(kind="image", image=display_name(str(image)) if image else None, reason=str(art["error"]))
        why = "; ".join(f"{name}: {art['error']}" for name, _, art in failures)
        return AnswerError(kind="no_evidence", image=first, reason=f"every tool failed ({why})")
    if not results:
        why = "; ".join(f"{n}: {w}" for n, w in unavailable.items()) or "none is registered"
        reason = f"no tool that can {card.what_is_missing} is available here ({why})"
        return AnswerError(kind="no_evidence", image=first, reason=reason)
    return None


def ask_llm(
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


def fallback_answer(card: QuestionCard, lang: str, values: dict[str, str]) -> str:
    """An answer from the tool results alone, when the LLM is unavailable or failed."""
    if card.fallback_text:
        return card.fallback_text.get(lang) or card.fallback_text.get("en") or ""
    order = card.fallback_fields
    lists = {s.field for s in tool_specs() if s.retrieves}  # a ranked list is no fallback's text
    order += tuple(f for f in tool_fields() if f not in order and f not in lists)
    found = [values[k].strip() for k in order if values.get(k, "").strip()]
    if found:  # a detail question takes the best single source; descriptions combine them
        return found[0] if card.single_source else "\n".join(found)
    return "无法回答：没有可用的信息。" if lang == "zh" else "Cannot answer: no information available."
