"""One writer per output; a disk cache that never fails a run; failed answers in the harness."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval_fakes import FakeAgent
from vlagent.agent.types import Answer, AnswerError, ToolTrace
from vlagent.cache import DiskCache
from vlagent.cli.app import app
from vlagent.evals.harness import run_eval
from vlagent.evals.journal import journal_path, load_journal
from vlagent.evals.lock import OutputLock, OutputLockedError, lock_path
from vlagent.evals.report import write_report

# --------------------------------------------------------------------------- the lock


def test_a_second_lock_on_the_same_output_fails_at_once_naming_the_pid(tmp_path: Path) -> None:
    out = tmp_path / "answers.json"
    with OutputLock(out) as held:
        assert held.held and lock_path(out).read_text().strip() == str(os.getpid())
        started = time.monotonic()
        with pytest.raises(OutputLockedError, match=rf"answers.json is being written by another run \(pid {os.getpid()}"):
            OutputLock(out).acquire()
        assert time.monotonic() - started < 1
        with pytest.raises(OutputLockedError):
            run_eval(FakeAgent(), tmp_path / "q.json", out, progress=False)
    assert not lock_path(out).exists()
    with OutputLock(out):  # free again
        pass


def test_a_stale_lock_file_is_taken_over(tmp_path: Path) -> None:
    out = tmp_path / "answers.json"
    lock_path(out).write_text("999999\n")  # a run that died: the file stays, its flock is gone
    with OutputLock(out):
        assert lock_path(out).read_text().strip() == str(os.getpid())


def test_a_lock_held_by_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    out = tmp_path / "answers.json"
    script = textwrap.dedent(
        f"""
        import time
        from vlagent.evals.lock import OutputLock
        OutputLock({str(out)!r}).acquire()
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"locked"
    with pytest.raises(OutputLockedError, match=f"pid {proc.pid}"):
        OutputLock(out).acquire()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with OutputLock(out):
        assert lock_path(out).read_text().strip() == str(os.getpid())


def test_retry_failed_needs_resume(tmp_path: Path) -> None:
    query = tmp_path / "q.json"
    query.write_text("[]", encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", str(query), "--images", str(tmp_path), "--out", str(tmp_path / "o.json"), "--retry-failed"])
    assert result.exit_code == 2 and "--retry-failed goes with --resume" in result.output


# --------------------------------------------------------------------------- answers with an error


class NoEvidence(FakeAgent):
    """Answers like FakeAgent, except for images named broken*: every tool failed."""

    def invoke(self, question, config=None):  # type: ignore[no-untyped-def]
        images = question.get("images") or []
        if any(i.startswith("broken") for i in images):
            with self._lock:
                self.n_calls += 1
                self.calls[question["question"]] += 1
            return Answer(
                text="", type="vqa", evidence=[],
                trace=[ToolTrace(name="classify"), ToolTrace(name="colors", ok=False, error="broken.jpg: corrupt image")],
                error=AnswerError(kind="image", image=images[0], reason="broken.jpg: corrupt image (truncated)"),
            )  # fmt: skip
        return super().invoke(question, config)


def test_an_answer_without_evidence_is_a_failed_item_with_no_answer(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.jpg", "broken.jpg"):
        (folder / name).write_bytes(b"x")
    items = [
        {"question": "这件衣服是什么颜色的？", "related_image": "broken.jpg", "answer": ""},
        {"question": "你好", "related_image": "", "answer": ""},
    ]
    query = tmp_path / "q.json"
    query.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "answers.json"
    run = run_eval(NoEvidence(), query, out, images=[folder], progress=False)
    assert [(p.index, p.message) for p in run.summary.failed] == [(0, "broken.jpg: corrupt image (truncated)")]
    assert run.summary.answered == 1
    assert json.loads(out.read_text(encoding="utf-8"))[0] == items[0]  # the answer stays empty
    entry = load_journal(journal_path(out))[0]
    assert (entry.status, entry.text, entry.fill, entry.error_kind) == ("failed", "", {}, "image")
    report = write_report(run, None, tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert "| failed | 1 |" in md and "item 0: broken.jpg: corrupt image (truncated)" in md
    assert report.items[0]["error_kind"] == "image"

    again = NoEvidence()
    run_eval(again, query, out, images=[folder], resume=True, progress=False)
    assert again.n_calls == 0  # --resume keeps the failure
    run_eval(again, query, out, images=[folder], resume=True, retry_failed=True, progress=False)
    assert again.n_calls == 1  # --retry-failed asks it again


# --------------------------------------------------------------------------- the cache


def test_a_corrupt_cache_file_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "cache" / "tools.sqlite"
    path.parent.mkdir()
    path.write_bytes(b"not a database at all" * 100)
    cache = DiskCache(path)
    assert cache.get_or_compute("k", lambda: {"v": 1}) == {"v": 1}
    assert cache.get("k") == {"v": 1} and cache.problem is None
    assert "was corrupt" in caplog.text
    assert len(list(path.parent.glob("tools.sqlite.corrupt-*"))) == 1
    cache.close()
    assert DiskCache(path).get("k") == {"v": 1}  # the new file is a real cache


def test_an_unusable_cache_folder_gives_a_memory_cache(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("a file, not a folder")
    cache = DiskCache(tmp_path / "cache" / "tools.sqlite")
    assert cache.problem and "caching in memory" in cache.problem
    assert cache.get_or_compute("k", lambda: [1, 2]) == [1, 2] and cache.get("k") == [1, 2]


def test_a_damaged_entry_is_a_miss(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "c.sqlite")
    cache.put("k", 1)
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        db.execute("UPDATE cache SET value='{broken' WHERE key='k'")
    assert cache.get("k") is None
    assert cache.get_or_compute("k", lambda: 2) == 2 and cache.get("k") == 2
