"""The LLM's own vote on each of many questions, cached in a JSONL next to the report.

Each vote is appended to the cache as it comes (one line per question, keyed by the LLM and the
question), so an interrupted run resumes and a second run asks the LLM nothing. A question the
LLM could not vote on (it failed or timed out) is asked again next time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vlagent.agent.classify import llm_vote
from vlagent.errors import one_line
from vlagent.analysis.questions import Question


class LLMLabel(BaseModel):
    type: str
    source: str  # "llm" | "failed" (no vote: the error says why)
    error: str | None = None
    cached: bool = False


def cache_key(llm_id: str, q: Question) -> str:
    return hashlib.sha256(json.dumps([llm_id, q.question, q.images], ensure_ascii=False).encode()).hexdigest()[:24]


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return out
    for line in path.read_text("utf-8").splitlines():
        try:
            obj = json.loads(line)
            out[obj["key"]] = obj
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut by an interruption
    return out


def llm_labels(
    questions: list[Question],
    llm: Any,
    llm_id: str,
    cache_path: Path,
    *,
    timeout: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[LLMLabel]:
    cache = read_cache(cache_path)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    out: list[LLMLabel] = []
    with cache_path.open("a", encoding="utf-8") as fh:
        for q in questions:
            key = cache_key(llm_id, q)
            hit = cache.get(key)
            if hit is not None:
                out.append(LLMLabel(type=hit["type"], source=hit.get("source", "llm"), cached=True))
            else:
                try:
                    vote = llm_vote(llm, q.question, q.images, timeout=timeout)
                    label = LLMLabel(type=max(vote.probs, key=lambda t: vote.probs[t]), source="llm")
                    row = {"key": key, "question": q.question, "type": label.type, "source": label.source}
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                    fh.flush()
                except (Exception, TimeoutError) as exc:  # noqa: BLE001 - asked again next run
                    label = LLMLabel(type="", source="failed", error=one_line(exc))
                out.append(label)
            if progress:
                progress(1)
    return out
