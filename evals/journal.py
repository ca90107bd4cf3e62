"""The run journal: one JSON line per finished question, appended and fsync'ed as it finishes.

An interrupted run (Ctrl-C, crash, kill) loses at most the questions that were in flight.
``--resume`` reuses every line whose key still matches the input item (index + a hash of its
question and images), so a changed input is recomputed; a failed one is retried only with
``--retry-failed``, a *degraded* one (answered, or failed, while a server it needed was down:
its classification came from the rules, its answer from the facts or the tools alone) only with
``--retry-degraded``. Each line names its degraded steps and why (``degraded``); a line written
before that field existed gets it from its tool errors.
One reader, :func:`load_journal` / :func:`load_journals`, with one rule: the latest line per item
index wins (a later ``failed`` never hides an earlier ``ok`` for the same input); a line that
does not parse (the torn last line of a process that died mid-write, or such a line that a
resumed run then wrote past) is skipped with a warning, and every other line is kept; fields a
reader does not know are ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from vlagent.data.queries import QueryItem
from vlagent.models.servers import was_unavailable

log = logging.getLogger(__name__)

JOURNAL_SUFFIX = ".journal.jsonl"


def journal_path(out: str | Path) -> Path:
    """``answers.json`` → ``answers.json.journal.jsonl`` (next to the output)."""
    out = Path(out)
    return out.with_name(out.name + JOURNAL_SUFFIX)


def shard_journal_path(out: str | Path, shard: int) -> Path:
    """The journal shard ``shard`` of a distributed run writes: ``answers.json.journal.shard-3.jsonl``."""
    out = Path(out)
    return out.with_name(f"{out.name}.journal.shard-{shard}.jsonl")


def journal_files(out: str | Path) -> list[Path]:
    """The run's journal and the shard journals of distributed runs that exist, main one first."""
    out = Path(out)
    shards = sorted(out.parent.glob(f"{glob_escape(out.name)}.journal.shard-*.jsonl"))
    return [journal_path(out), *shards]


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def item_key(item: QueryItem) -> str:
    """What the answer depends on: the question text and the image names, hashed."""
    payload = json.dumps(
        {"question": item.question.strip(), "images": item.images}, ensure_ascii=False, sort_keys=True
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


class RankedImage(BaseModel):
    image: str
    score: float


class JournalEntry(BaseModel):
    """The outcome of one question."""

    index: int
    key: str
    status: Literal["ok", "failed"]
    type: str | None = Field(None, description="the agent's question type")
    text: str = ""
    ranked: list[RankedImage] = Field(default_factory=list, description="retrieved images, best first")
    fill: dict[str, str] = Field(default_factory=dict, description="fields written into the output item")
    classifier: str | None = None
    tools: list[str] = Field(default_factory=list, description="tool calls, in order")
    tool_errors: list[str] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list, description="the tool results the answer used")
    error: str | None = Field(None, description="why there is no answer (status failed)")
    error_kind: str | None = Field(None, description="no_evidence / image / llm / internal / exception")
    degraded: list[str] = Field(
        default_factory=list,
        description="the steps that ran while their server was down ('step: reason'): the answer is a "
        "fallback (rules, facts, the other tools), redone by --resume --retry-degraded",
    )
    duration_s: float = 0.0
    finished_at: float = Field(default_factory=time.time)

    @model_validator(mode="after")
    def _derive_degraded(self) -> "JournalEntry":
        """A line written before ``degraded`` existed: read it from the tool errors."""
        if "degraded" not in self.model_fields_set:
            self.degraded = degraded_reasons(self.tool_errors, self.error)
        return self

    @property
    def ranked_ids(self) -> list[str]:
        return [r.image for r in self.ranked]


def degraded_reasons(tool_errors: list[str], error: str | None = None) -> list[str]:
    """The tool errors (``step: reason``) that say a server was down; for an item whose question
    raised, its error when it says so."""
    found = [line for line in tool_errors if was_unavailable(line)]
    if not found and error and was_unavailable(error):
        found = [error]
    return list(dict.fromkeys(found))


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


class Journal:
    """Append-only JSONL writer, safe to call from several worker threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fh = open(self.path, "a", encoding="utf-8")
        if self._fh.tell() > 0 and not _ends_with_newline(self.path):
            self._fh.write("\n")  # a torn last line (killed mid-write) must not swallow the next entry
            self._fh.flush()

    def record(self, entry: JournalEntry) -> None:
        line = entry.model_dump_json() + "\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def load_journal(path: str | Path, entries: dict[int, JournalEntry] | None = None) -> dict[int, JournalEntry]:
    """The latest entry per item index (the module docstring's rule); unreadable lines are
    skipped with one warning per file.

    ``entries``: merge into these (the entries of other journal files of the same run)."""
    path = Path(path)
    entries = {} if entries is None else entries
    if not path.is_file():
        return entries
    skipped: list[int] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                entry = JournalEntry.model_validate_json(line)
            except ValidationError:
                skipped.append(number)
                continue
            previous = entries.get(entry.index)
            # a later 'failed' line never hides an earlier good answer for the same input
            if previous is not None and previous.status == "ok" and entry.status == "failed" and previous.key == entry.key:
                continue
            entries[entry.index] = entry
    if skipped:
        log.warning(
            "journal %s: skipped %d unreadable line(s) (line %s; a write cut short?); the other entries are kept",
            path, len(skipped), ", ".join(map(str, skipped[:5])) + (" ..." if len(skipped) > 5 else ""),
        )  # fmt: skip
    return entries


def load_journals(paths: list[Path]) -> dict[int, JournalEntry]:
    """:func:`load_journal` over several files (a run's journal and its shards)."""
    entries: dict[int, JournalEntry] = {}
    for path in paths:
        load_journal(path, entries)
    return entries
