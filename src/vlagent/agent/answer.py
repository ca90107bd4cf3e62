"""The answer writer: a turn's tool results → the answer, by the question card's answer mode.

Each result (:class:`ToolResult`) goes into the template field its tool's spec names and into
the evidence. Then, in order:

* every tool the question needed failed (or none ran): an error naming the image and the
  reason (:func:`no_evidence_error`; the card's ``what_is_missing``), the LLM is never asked;
* ``list``: the card's template filled with the ranked list, no LLM;
* ``transcript``: the text as read, when the question asks to transcribe it (``cues.transcribe``);
* ``summary``: the card's ``summary_tool``'s one-line summary;
* ``facts``: the per-image facts (:mod:`vlagent.agent.facts`), stated by the card's ``decide``
  when they settle the question (the intent's cues say what it asks: a colour, "which one");
  an LLM answer to a colour question always carries the measured colour;
* otherwise the card's template (``prompts/<type>.<lang>.txt``) and the answer LLM; without an
  LLM (or when it fails) the card's ``fallback`` from the facts, else :func:`fallback_answer`
  from the card's ``fallback_fields``.

Every sentence the writer itself says is in the sentence book (``prompts/sentences.<lang>.txt``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel

from vlagent.agent.facts import Decision, Facts, ImageFacts, TITLE, Voice, keep_colour, readable_text
from vlagent.agent.names import display_name, evidence_id, without_paths
from vlagent.agent.prompts import fill, render_messages, sentences
from vlagent.agent.questions import QuestionCard
from vlagent.agent.spec import AgentSpec
from vlagent.agent.state import AgentParts, AgentState
from vlagent.agent.types import AnswerError, Cues, Intent, ToolResult
from vlagent.errors import one_line


def turn_results(state: AgentState) -> list[ToolResult]:
    """This turn's tool results in the plan's order (round, then place in the round)."""
    return sorted(map(ToolResult.model_validate, state.get("tool_results") or []), key=lambda r: (r.round, r.n))


@dataclass
class Collected:
    """A turn's tool results sorted for the answer."""

    values: dict[str, list[str]]
    notes: list[str]
    trace: list[dict[str, Any]]
    retrieved: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    failures: list[ToolResult] = field(default_factory=list)


def _trace_entry(r: ToolResult) -> dict[str, Any]:
    return {"name": r.name, "args": r.args, "duration_s": r.seconds, "ok": r.ok, "error": r.error, "output": r.output}


def collect(parts: AgentParts, state: AgentState, results: list[ToolResult], voice: Voice) -> Collected:
    """Each result into the trace, its field (the spec's), the evidence, or the failures."""
    spec = parts.spec
    # which tools are missing, in plain words: the reason ("VLAGENT_CAPTION_BACKEND=none") is for
    # the trace and the log; a small answer LLM copied it into descriptions as if it were a fact
    notes = [voice.say("tool_unavailable", name=name) for name in parts.unavailable]
    got = Collected({k: [] for k in spec.fields}, notes, list(state.get("trace", [])))
    multi = len({r.args.get("image") for r in results if "image" in r.args}) > 1
    for r in results:
        got.trace.append(_trace_entry(r))
        if not r.ok:
            got.notes.append(f"{r.name} failed: {without_paths(str(r.error))}")
            got.failures.append(r)
            continue
        got.evidence.append(evidence_id(r.name, r.args))
        tool = spec.tool(r.name)
        if tool is None or tool.field is None:
            continue
        # the tool's one-line fact in the question's language where its spec asks for it
        # (colours: "mainly white, also grey"; the raw line's percentages were copied into answers)
        wants = tool.summarize and tool.summary_in_template and r.output
        summary = tool.summarize(r.output, voice.lang) if wants else ""  # type: ignore[misc]
        text = summary.strip() or r.text.strip()
        if tool.retrieves:
            got.retrieved = list(r.output or [])
        if tool.keep == "last":  # e.g. the VLM's answer given the OCR text replaces its first one
            got.values[tool.field] = [text]
        else:
            prefix = f"[{display_name(r.args['image'])}] " if multi and tool.per_image and "image" in r.args else ""
            got.values.setdefault(tool.field, []).append(prefix + text)
    return got


def write_answer(parts: AgentParts, state: AgentState) -> dict[str, Any]:
    """The answer node's update: the answer (or the error), its evidence, trace and memory."""
    intent = Intent.model_validate(state["intent"])
    card = parts.spec.card(intent.type)
    lang = intent.language
    voice = Voice(lang, sentences(card, lang), parts.spec.tools)
    images = state.get("turn_images", [])
    results = turn_results(state)
    got = collect(parts, state, results, voice)
    turn = {"question": state["question"], "images": images, "type": card.name}
    error = no_evidence_error(card, images, results, got.evidence, got.failures, parts.unavailable)
    if error is not None:  # nothing to answer from: say why, never let the LLM guess
        got.trace.append({"name": "no_evidence", "args": {}, "ok": False, "error": error.line(), "duration_s": 0.0})
        return {
            "answer": "", "retrieved": [], "trace": got.trace, "evidence": [], "error": error,
            "history": [{**turn, "answer": ""}], "last_images": images,
        }  # fmt: skip
    image_titles = [parts.titles.get(i) or parts.titles.get(display_name(i), "") for i in images]
    got.evidence += [f"title[{display_name(i)}]" for i, t in zip(images, image_titles) if t]
    filled = template_values(state, got, images, image_titles, voice, intent.query)
    text = by_mode(parts, card, intent.cues, got, results, (images, image_titles), filled, voice)
    return {
        "answer": text, "retrieved": got.retrieved, "trace": got.trace, "evidence": got.evidence, "error": None,
        "history": [{**turn, "answer": text}], "last_images": images,
    }  # fmt: skip


def template_values(
    state: AgentState, got: Collected, images: list[str], image_titles: list[str], voice: Voice, query: str
) -> dict[str, str]:
    """The template's fields: each tool's, then the question, history, titles, notes, query, best."""
    titles = image_titles
    if len(images) > 1:  # which title belongs to which image
        titles = [f"[{display_name(i)}] {t}" for i, t in zip(images, image_titles) if t]
    filled = {k: "\n".join(v) for k, v in got.values.items()}
    filled.update(
        question=state["question"], history=history_text(state, voice),
        title="；".join(t for t in titles if t), notes="; ".join(got.notes), query=query or state["question"],
        best=got.retrieved[0]["image"] if got.retrieved else voice.word("no_image_found"),
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
    voice: Voice,
) -> str:
    """The answer's text, by the card's answer mode (the module docstring's order). The question's
    words reach only the LLM's template; every decision here reads the intent's cues."""
    spec, lang = parts.spec, voice.lang
    decided: Decision | None = None
    facts: Facts | None = None
    if card.answer == "facts":
        facts = image_facts(spec, seen[0], seen[1], results, cues, voice)
        filled["facts"] = facts.render()
        decided = card.decide(facts) if card.decide else None
    transcript = " ".join(" ".join(got.values.get(voice.field("read"), [])).split())
    summary = tool_summary(spec, card, results, lang) if card.answer == "summary" else ""
    if card.answer == "list":  # a ranked list with one line per item: no LLM rewrites it
        return fill(card, lang, filled, spec.fields)[1]  # type: ignore[arg-type]
    if card.answer == "transcript" and transcript and cues.transcribe:
        return transcript  # "what does it say?": the text as read; an LLM would only shorten it
    if summary:  # the tool's own verdict is the answer
        return summary
    if decided is not None:  # the facts settle it (or show that nothing here can): state them, no LLM
        if decided.missing:  # what the answer lacked: no image had these facts
            got.evidence.append(f"missing[{','.join(decided.missing)}]")
        got.trace.append({
            "name": "facts", "args": {"type": card.name, "missing": decided.missing}, "ok": True,
            "duration_s": 0.0, "output": decided.text,
        })  # fmt: skip
        return decided.text
    text, entry = ask_llm(parts.llm, card, lang, filled, spec.fields)
    got.trace.append(entry)
    if text is None:  # no LLM (or it failed): an answer from the facts, else the tool results
        from_facts = card.fallback(facts) if facts is not None and card.fallback else None
        return from_facts or fallback_answer(spec, card, voice, filled)
    return keep_colour(text, facts) if facts is not None else text


def tool_summary(spec: AgentSpec, card: QuestionCard, results: list[ToolResult], lang: str) -> str:
    """The last ok result of the card's ``summary_tool``, as its spec summarises it."""
    for r in reversed(results):
        tool = spec.tool(r.name)
        if r.name == card.summary_tool and tool is not None and r.ok:
            text = tool.summarize(r.output, lang) if tool.summarize else ""
            return (text or r.text).strip()
    return ""


def image_facts(
    spec: AgentSpec, images: list[str], titles: list[str], results: list[ToolResult], cues: Cues, voice: Voice
) -> Facts:
    """Each image's facts (its title, then each per-image tool's summary), and the shared answers."""
    per_image = [ImageFacts(name=display_name(i)) for i in images]
    by_name = {i: f for i, f in zip(images, per_image)}
    for f, title in zip(per_image, titles):
        f.add(TITLE, title)
    shared: dict[str, str] = {}
    for r in results:
        tool = spec.tool(r.name)
        if tool is None or tool.field is None or not r.ok:
            continue
        text = tool.summarize(r.output, voice.lang) if tool.summarize else r.text.strip()
        target = by_name.get(str(r.args.get("image"))) if tool.per_image else None
        if target is None:
            shared[tool.field] = text  # about all images at once (the VLM), the last one wins
            continue
        target.add(tool.field, readable_text(text) if tool.fact == "read" else text)
        if tool.structured and r.output:
            target.measure(tool.structured(r.output))
    return Facts(per_image, shared, cues, voice)


def history_text(state: AgentState, voice: Voice, turns: int = 3) -> str:
    who_q, who_a = voice.word("history_user"), voice.word("history_assistant")
    return "\n".join(f"{who_q}: {turn['question']}\n{who_a}: {turn['answer']}" for turn in state.get("history", [])[-turns:])


def no_evidence_error(
    card: QuestionCard,
    images: list[str],
    results: list[ToolResult],
    evidence: list[str],
    failures: list[ToolResult],
    unavailable: dict[str, str],
) -> AnswerError | None:
    """The error to answer with when the tools the question needs gave nothing; else None."""
    if not card.needs_evidence or evidence:
        return None
    first = display_name(images[0]) if images else None
    if card.needs_image and not images:
        return AnswerError(kind="image", reason=f"a {card.name} question needs an image, and none was given")
    if failures:
        image_failures = [r for r in failures if r.image_error]
        if image_failures:
            r = image_failures[0]
            return AnswerError(kind="image", image=display_name(r.image) if r.image else None, reason=str(r.error))
        why = "; ".join(f"{r.name}: {r.error}" for r in failures)
        return AnswerError(kind="no_evidence", image=first, reason=f"every tool failed ({why})")
    if not results:
        why = "; ".join(f"{n}: {w}" for n, w in unavailable.items()) or "the agent has none"
        reason = f"no tool that can {card.what_is_missing} is available here ({why})"
        return AnswerError(kind="no_evidence", image=first, reason=reason)
    return None


def ask_llm(
    llm: BaseChatModel | None, card: QuestionCard, lang: str, values: dict[str, str], fields: tuple[str, ...]
) -> tuple[str | None, dict[str, Any]]:
    entry: dict[str, Any] = {"name": "answer_llm", "args": {"template": f"{card.name}.{lang}"}}
    if llm is None:
        entry.update(ok=False, error="no LLM configured", duration_s=0.0)
        return None, entry
    t0 = time.perf_counter()
    try:
        reply = llm.invoke(render_messages(card, lang, values, fields))  # type: ignore[arg-type]
        text = str(reply.content).strip()
        entry.update(ok=bool(text), error=None if text else "empty reply")
    except Exception as exc:
        text = ""
        entry.update(ok=False, error=one_line(exc))
    entry["duration_s"] = time.perf_counter() - t0
    return (text or None), entry


def fallback_answer(spec: AgentSpec, card: QuestionCard, voice: Voice, values: dict[str, str]) -> str:
    """An answer from the tool results alone, when the LLM is unavailable or failed."""
    if card.fallback_text:
        return card.fallback_text.get(voice.lang) or card.fallback_text.get("en") or ""
    order = card.fallback_fields
    lists = {t.field for t in spec.tools if t.retrieves}  # a ranked list is no fallback's text
    order += tuple(f for f in spec.fields if f not in order and f not in lists)
    found = [values[k].strip() for k in order if values.get(k, "").strip()]
    if found:  # a detail question takes the best single source; descriptions combine them
        return found[0] if card.single_source else "\n".join(found)
    return voice.word("cannot_answer")
