"""The batch harness: output format, journal/resume, failures, concurrency, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PIL import Image

from eval_fakes import FakeAgent
from vlagent.errors import DataError
from vlagent.evals.harness import run_eval
from vlagent.evals.journal import journal_path, load_journal, load_journals

CATALOGUE = ["a.jpg", "b.jpg", "c.jpg", "red_dress.jpg", "blue_shirt.jpg"]

QUERIES = [
    {"question": "请对给定的图片进行描述。", "related_image": "a.jpg", "answer": "", "id": 7},
    {"question": "请匹配到与 b 最相关的图片。", "related_image": "", "answer": "", "gold_image": "b.jpg"},
    {"question": "这件连衣裙是什么颜色的？", "related_image": "red_dress.jpg", "answer": ""},
    {"question": "你好", "related_image": "", "answer": "", "extra": {"k": [1, 2]}},
    {"question": "这件衬衫是什么颜色？", "related_image": "blue_shirt.jpg", "answer": ""},
    {"question": "Find the image: c", "related_image": "", "answer": ""},
    {"question": "比较", "related_image": "a.jpg,b.jpg", "answer": ""},
]


@pytest.fixture()
def catalogue(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for k, name in enumerate(CATALOGUE):
        Image.new("RGB", (8, 8), (k * 40, 0, 0)).save(folder / name)
    return folder


def write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture()
def query(tmp_path: Path) -> Path:
    return write_json(tmp_path / "query.json", QUERIES)


def run(agent: FakeAgent, query: Path, out: Path, catalogue: Path, **kw):  # type: ignore[no-untyped-def]
    return run_eval(agent, query, out, images=[catalogue], progress=False, **kw)


def read(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_output_keeps_order_and_fields_and_fills_the_right_field(query: Path, catalogue: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "answers.json"
    result = run(FakeAgent(), query, out, catalogue)
    got = read(out)
    assert len(got) == len(QUERIES)
    for before, after in zip(QUERIES, got):
        assert after["question"] == before["question"]
        for key, value in before.items():
            if key not in ("answer", "related_image"):
                assert after[key] == value  # extra fields kept as they were
    # retrieval: related_image = the best image's file name (not the catalogue path), answer untouched
    assert got[1]["related_image"] == "b.jpg" and got[1]["answer"] == ""
    assert got[5]["related_image"] == "c.jpg"
    # the others: answer filled, related_image kept
    assert got[2]["answer"] == "红色" and got[2]["related_image"] == "red_dress.jpg"
    assert got[4]["answer"] == "蓝色"
    assert got[3]["answer"] == "你好" and got[3]["related_image"] == ""
    assert got[6]["answer"] == "描述 a.jpg, b.jpg"
    s = result.summary
    assert (s.total, s.answered, s.computed, s.reused, len(s.failed), len(s.invalid)) == (7, 7, 7, 0, 0, 0)
    assert s.by_type == {"chat": 1, "describe": 2, "retrieve": 2, "vqa": 2}
    assert s.tool_errors == 2  # the fake's caption tool reports an error on describe
    # the journal keeps the ranked list for the metrics
    entries = load_journal(journal_path(out))
    assert entries[1].ranked_ids[:2] == ["image/b.jpg", "image/a.jpg"]


def test_each_question_gets_its_own_thread(query: Path, catalogue: Path, tmp_path: Path) -> None:
    agent = FakeAgent()
    run(agent, query, tmp_path / "answers.json", catalogue)
    thread_ids = [c["configurable"]["thread_id"] for c in agent.configs]
    assert len(set(thread_ids)) == len(QUERIES)


@pytest.mark.parametrize(("crash", "workers"), [(KeyboardInterrupt, 1), (SystemExit, 1), (KeyboardInterrupt, 3)])
def test_resume_after_a_crash_gives_the_same_output_and_recomputes_nothing(
    query: Path, catalogue: Path, tmp_path: Path, crash: type[BaseException], workers: int
) -> None:
    reference = tmp_path / "ref" / "answers.json"
    run(FakeAgent(), query, reference, catalogue)

    out = tmp_path / "run" / "answers.json"
    first = FakeAgent(crash_on=4, crash=crash)
    with pytest.raises(crash):
        run(first, query, out, catalogue, workers=workers)
    assert not out.exists()  # no partial output file
    assert not list(out.parent.glob("*.tmp"))
    journalled = load_journal(journal_path(out))
    assert journalled and all(e.status == "ok" for e in journalled.values())
    # the crashed question never reached the journal (with workers, others may have finished)
    assert len(journalled) == 3 if workers == 1 else len(journalled) < len(QUERIES)

    second = FakeAgent()
    result = run(second, query, out, catalogue, resume=True, workers=workers)
    assert read(out) == read(reference)
    done_before = {QUERIES[i]["question"] for i in journalled}
    assert not done_before & set(second.calls)  # nothing journalled is asked again
    assert sum(second.calls.values()) == len(QUERIES) - len(journalled)
    assert result.summary.reused == len(journalled)
    assert result.summary.computed == len(QUERIES) - len(journalled)
    # prepare() saw only the questions still to answer
    assert [p["index"] for p in second.prepared[0]] == sorted(set(range(len(QUERIES))) - set(journalled))


def test_resume_after_the_process_is_killed(query: Path, catalogue: Path, tmp_path: Path) -> None:
    out = tmp_path / "answers.json"
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from eval_fakes import FakeAgent
        from vlagent.evals.harness import run_eval

        class Slow(FakeAgent):
            def invoke(self, question, config=None):
                time.sleep(0.3)
                return super().invoke(question, config)

        run_eval(Slow(), {str(query)!r}, {str(out)!r}, images=[{str(catalogue)!r}], progress=False)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    jpath = journal_path(out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if jpath.exists() and len(jpath.read_text(encoding="utf-8").splitlines()) >= 2:
            break
        if proc.poll() is not None:
            pytest.fail(f"the run ended early: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    journalled = load_journal(jpath)
    assert 2 <= len(journalled) < len(QUERIES)

    agent = FakeAgent()
    run(agent, query, out, catalogue, resume=True)
    reference = tmp_path / "ref.json"
    run(FakeAgent(), query, reference, catalogue)
    assert read(out) == read(reference)
    assert sum(agent.calls.values()) == len(QUERIES) - len(journalled)


def test_a_failed_question_is_recorded_the_run_goes_on_and_retry_failed_retries_it(catalogue: Path, tmp_path: Path) -> None:
    items = [dict(q) for q in QUERIES]
    items[2] = {"question": "FAIL 这件连衣裙是什么颜色的？", "related_image": "red_dress.jpg", "answer": ""}
    query = write_json(tmp_path / "query.json", items)
    out = tmp_path / "answers.json"
    result = run(FakeAgent(), query, out, catalogue)
    assert [(p.index, p.message) for p in result.summary.failed] == [(2, "RuntimeError: scripted failure")]
    assert result.summary.answered == len(items) - 1
    got = read(out)
    assert got[2] == items[2]  # left as it was
    assert got[3]["answer"] == "你好"  # the run went on

    class Fixed(FakeAgent):
        def invoke(self, question, config=None):  # type: ignore[no-untyped-def]
            question = dict(question, question=question["question"].replace("FAIL ", ""))
            return super().invoke(question, config)

    agent = Fixed()
    result = run(agent, query, out, catalogue, resume=True)
    assert agent.n_calls == 0  # --resume alone keeps the failure: nothing is asked again
    assert [p.index for p in result.summary.failed] == [2] and read(out)[2] == items[2]

    result = run(agent, query, out, catalogue, resume=True, retry_failed=True)
    assert agent.n_calls == 1  # only the failed one is asked again
    assert result.summary.failed == []
    assert read(out)[2]["answer"] == "红色"


def test_a_changed_question_is_not_reused_on_resume(query: Path, catalogue: Path, tmp_path: Path) -> None:
    out = tmp_path / "answers.json"
    run(FakeAgent(), query, out, catalogue)
    items = [dict(q) for q in QUERIES]
    items[4]["related_image"] = "red_dress.jpg"
    write_json(query, items)
    agent = FakeAgent()
    run(agent, query, out, catalogue, resume=True)
    assert agent.n_calls == 1
    assert read(out)[4]["answer"] == "红色"


def test_without_resume_the_old_journal_is_kept_aside(query: Path, catalogue: Path, tmp_path: Path) -> None:
    out = tmp_path / "answers.json"
    run(FakeAgent(), query, out, catalogue)
    agent = FakeAgent()
    run(agent, query, out, catalogue)
    assert agent.n_calls == len(QUERIES)  # a fresh run asks everything again
    backups = list(tmp_path.glob("answers.json.journal.jsonl.*.bak"))
    assert len(backups) == 1 and len(load_journal(backups[0])) == len(QUERIES)


def test_a_torn_last_journal_line_is_ignored(query: Path, catalogue: Path, tmp_path: Path) -> None:
    out = tmp_path / "answers.json"
    with pytest.raises(KeyboardInterrupt):
        run(FakeAgent(crash_on=3), query, out, catalogue)
    with open(journal_path(out), "a", encoding="utf-8") as fh:
        fh.write('{"index": 5, "key": "abc", "sta')  # died mid-write
    agent = FakeAgent()
    result = run(agent, query, out, catalogue, resume=True)
    assert agent.n_calls == len(QUERIES) - 2
    assert result.summary.answered == len(QUERIES)


def test_workers_give_the_same_output_and_call_prepare_once(query: Path, catalogue: Path, tmp_path: Path) -> None:
    run(FakeAgent(), query, tmp_path / "one.json", catalogue)
    agent = FakeAgent()
    result = run(agent, query, tmp_path / "many.json", catalogue, workers=4)
    assert read(tmp_path / "many.json") == read(tmp_path / "one.json")
    assert agent.n_calls == len(QUERIES)
    assert len(agent.prepared) == 1 and len(agent.prepared[0]) == len(QUERIES)
    assert {"index", "question", "images"} <= set(agent.prepared[0][0])
    assert len(load_journal(journal_path(tmp_path / "many.json"))) == len(QUERIES)
    assert result.summary.workers == 4


def test_a_failing_prepare_does_not_stop_the_run(query: Path, catalogue: Path, tmp_path: Path) -> None:
    class BadPrepare(FakeAgent):
        def prepare(self, items):  # type: ignore[no-untyped-def]
            raise RuntimeError("no batching today")

    result = run(BadPrepare(), query, tmp_path / "answers.json", catalogue)
    assert result.summary.answered == len(QUERIES)


# --------------------------------------------------------------------------- bad input


def test_malformed_json_is_one_clear_error(catalogue: Path, tmp_path: Path) -> None:
    query = tmp_path / "query.json"
    query.write_text('[{"question": "a", "related_image": "", "answer": ""},\n {"question": }]', encoding="utf-8")
    with pytest.raises(DataError, match=r"malformed JSON at line 2"):
        run(FakeAgent(), query, tmp_path / "answers.json", catalogue)
    assert not (tmp_path / "answers.json").exists()


def test_not_a_list_is_one_clear_error(catalogue: Path, tmp_path: Path) -> None:
    query = write_json(tmp_path / "query.json", {"question": "a"})
    with pytest.raises(DataError, match="expected a JSON list"):
        run(FakeAgent(), query, tmp_path / "answers.json", catalogue)


def test_bad_items_are_reported_by_index_and_copied_untouched(catalogue: Path, tmp_path: Path) -> None:
    items = [
        {"question": "你好", "related_image": "", "answer": ""},  # 0 fine
        {"related_image": "a.jpg", "answer": ""},  # 1 no question
        {"question": "   ", "related_image": "a.jpg", "answer": ""},  # 2 empty question
        {"question": "描述", "related_image": "nope.jpg", "answer": ""},  # 3 missing image
        "just a string",  # 4 not an object
        {"question": "你好", "related_image": "", "answer": ""},  # 5 duplicate of 0
        {"question": "描述一下", "related_image": "a.jpg"},  # 6 no answer field: answered anyway
        {"question": "比较", "related_image": "a.jpg, missing.png", "answer": "keep"},  # 7 one missing
        {"question": "x", "related_image": 3, "answer": ""},  # 8 wrong type
    ]
    query = write_json(tmp_path / "query.json", items)
    out = tmp_path / "answers.json"
    agent = FakeAgent()
    result = run(agent, query, out, catalogue)
    invalid = {p.index: p.message for p in result.summary.invalid}
    assert sorted(invalid) == [1, 2, 3, 4, 7, 8]
    assert "question" in invalid[1]
    assert "empty question" in invalid[2]
    assert "nope.jpg" in invalid[3] and "not found" in invalid[3]
    assert "missing.png" in invalid[7] and "a.jpg" not in invalid[7].split("not found")[0]
    warnings = {p.index: p.message for p in result.summary.warnings}
    assert "duplicate of item 0" in warnings[5]
    assert "answer" in warnings[6]
    got = read(out)
    assert len(got) == len(items)
    for i in invalid:
        assert got[i] == items[i]  # nothing lost, nothing changed
    assert got[5]["answer"] == got[0]["answer"] == "你好"
    assert got[6]["answer"] == "描述 a.jpg"
    assert agent.calls["你好"] == 1  # the duplicate is not asked twice
    assert result.summary.duplicates == 1
    assert result.summary.answered == 3


def test_zip_catalogue_and_file_name_matching(tmp_path: Path, catalogue: Path) -> None:
    import zipfile

    archive = tmp_path / "image.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in CATALOGUE:
            zf.write(catalogue / name, f"image/{name}")
    items = [
        {"question": "描述", "related_image": "a.jpg", "answer": ""},
        {"question": "描述", "related_image": "image/b.jpg", "answer": ""},
        {"question": "描述", "related_image": "z.jpg", "answer": ""},
    ]
    query = write_json(tmp_path / "query.json", items)
    result = run_eval(FakeAgent(), query, tmp_path / "answers.json", images=[archive], progress=False)
    assert [p.index for p in result.summary.invalid] == [2]
    assert result.summary.answered == 2


def test_workers_must_be_positive(query: Path, catalogue: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="workers"):
        run(FakeAgent(), query, tmp_path / "answers.json", catalogue, workers=0)


def test_the_journal_reader_keeps_what_it_can(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One reader for every journal: a truncated last line is skipped with a warning and loses
    nothing before it; for a duplicate index the last line wins (a later failure never hides an
    earlier answer to the same input); unknown fields are ignored."""
    path = tmp_path / "answers.json.journal.jsonl"
    lines = [
        {"index": 0, "key": "k0", "status": "ok", "text": "first"},
        {"index": 1, "key": "k1", "status": "failed", "error": "timeout"},
        {"index": 0, "key": "k0", "status": "ok", "text": "second", "from_a_newer_version": 1},
        {"index": 1, "key": "k1", "status": "ok", "text": "retried"},
        {"index": 2, "key": "k2", "status": "ok", "text": "kept"},
        {"index": 2, "key": "k2", "status": "failed", "error": "a later failure"},
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines) + '{"index": 3, "key": "k3", "sta'
    path.write_text(text, encoding="utf-8")
    with caplog.at_level("WARNING", logger="vlagent.evals.journal"):
        entries = load_journal(path)
    assert sorted(entries) == [0, 1, 2]
    assert entries[0].text == "second" and entries[1].text == "retried" and entries[2].text == "kept"
    assert "skipped 1 unreadable line(s) (line 7" in caplog.text
    # shards merge with the same rule, in the order given
    shard = tmp_path / "answers.json.journal.shard-0.jsonl"
    shard.write_text(json.dumps({"index": 0, "key": "k0", "status": "ok", "text": "shard"}) + "\n", encoding="utf-8")
    assert load_journals([path, shard])[0].text == "shard"
