"""The agent's classifier over many questions, cached in a JSONL next to the report.

Each LLM answer is appended to the cache as it comes (one line per question, keyed by the LLM
and the question), so an interrupted run resumes and a second run asks the LLM nothing. Only
answers the LLM gave are cached; a question the classifier answered from its rules (the LLM
failed, timed out, or none is configured) is asked again next time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vlagent.agent.classify import classify
from vlagent.analysis.questions import Question


class LLMLabel(BaseModel):
    type: str
    source: str  # "llm" | "rules" (the classifier fell back)
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
                out.append(LLMLabel(type=hit["type"], source="llm", cached=True))
            else:
                result = classify(q.question, q.images, llm, timeout=timeout)
                label = LLMLabel(type=result.classification.type.value, source=result.source, error=result.error)
                if result.source == "llm":
                    fh.write(json.dumps({"key": key, "question": q.question, "type": label.type}, ensure_ascii=False) + "\n")
                    fh.flush()
                out.append(label)
            if progress:
                progress(1)
    return out
