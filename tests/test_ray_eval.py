"""`vlagent eval --engine ray`: sharded across actors, the local run's output and summary, resumable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from eval_fakes import FakeAgent, make_broken_agent, make_fake_agent
from fixtures_data import EXTRA_QUERIES, GOOD_QUERIES
from vlagent.errors import VlagentError
from vlagent.evals.harness import run_eval
from vlagent.evals.journal import journal_files, load_journal
from vlagent.settings import Settings

pytest.importorskip("ray")

from vlagent.evals.ray_eval import run_eval_ray  # noqa: E402

runner = CliRunner()
SAME = {"total", "answered", "duplicates", "failed", "invalid", "warnings", "by_type", "tool_errors"}


@pytest.fixture()
def query(tmp_path: Path) -> Path:
    items = GOOD_QUERIES + EXTRA_QUERIES + [
        {"question": "FAIL this one", "related_image": "", "answer": ""},
        dict(GOOD_QUERIES[0]),  # a duplicate
        {"question": "", "related_image": "", "answer": ""},  # invalid
    ]  # fmt: skip
    path = tmp_path / "query.json"
    path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    return path


def ray_run(query: Path, out: Path, catalogue: Any, **kw: Any):  # type: ignore[no-untyped-def]
    kw.setdefault("actors", 2)
    return run_eval_ray(
        make_fake_agent, query, out, images=[catalogue.folder], annotations=None,
        settings=Settings(), progress=False, **kw,
    )  # fmt: skip


def test_ray_run_gives_the_local_output_and_summary(ray_local, query, catalogue, tmp_path) -> None:  # type: ignore[no-untyped-def]
    local = run_eval(FakeAgent(), query, tmp_path / "local.json", images=[catalogue.folder], progress=False)
    remote = ray_run(query, tmp_path / "ray.json", catalogue)
    assert (tmp_path / "ray.json").read_text(encoding="utf-8") == (tmp_path / "local.json").read_text(encoding="utf-8")
    assert remote.summary.model_dump(include=SAME) == local.summary.model_dump(include=SAME)
    assert remote.summary.computed == local.summary.computed == 10
    assert remote.summary.workers == 2
    assert {i: e.fill for i, e in remote.entries.items()} == {i: e.fill for i, e in local.entries.items()}
    shards = journal_files(tmp_path / "ray.json")[1:]
    assert [p.name for p in shards] == ["ray.json.journal.shard-0.jsonl", "ray.json.journal.shard-1.jsonl"]
    per_shard = [set(load_journal(p)) for p in shards]
    assert per_shard[0] and per_shard[1] and not per_shard[0] & per_shard[1]  # both actors worked, apart
    assert set.union(*per_shard) == set(range(10))  # every question once (10 is a duplicate, 11 invalid)


def test_resume_after_a_killed_ray_run_reads_every_shard(ray_local, query, catalogue, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "answers.json"
    seen: list[int] = []

    def kill_after_three(entry: Any) -> None:
        seen.append(entry.index)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ray_run(query, out, catalogue, on_entry=kill_after_three)
    assert not out.exists()  # the output is written only at the end
    resumed = ray_run(query, out, catalogue, resume=True, actors=3)
    s = resumed.summary
    assert s.reused >= 3 and s.computed == 10 - s.reused and s.answered == 10  # nothing asked twice
    local = run_eval(FakeAgent(), query, tmp_path / "local.json", images=[catalogue.folder], progress=False)
    assert out.read_text(encoding="utf-8") == (tmp_path / "local.json").read_text(encoding="utf-8")
    # a local --resume reads the shards of the Ray run too: nothing left to compute
    again = run_eval(FakeAgent(), query, out, images=[catalogue.folder], progress=False, resume=True)
    # nothing computed again: 9 answers from the journals, the failure stays failed (kept, not retried)
    assert (again.summary.reused, again.summary.computed, len(again.summary.failed)) == (9, 0, 1)
    assert local.summary.answered == again.summary.answered


def test_an_agent_that_cannot_be_built_on_the_actors_is_one_line(ray_local, query, catalogue, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(VlagentError) as err:
        run_eval_ray(make_broken_agent, query, tmp_path / "a.json", images=[catalogue.folder],
                     annotations=None, settings=Settings(), progress=False)  # fmt: skip
    assert "no-such-model" in str(err.value) and "\n" not in str(err.value)


def test_eval_command_with_engine_ray(ray_local, query, catalogue, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from vlagent.cli.app import app
    from vlagent.cli import eval_cmd as eval_cli

    monkeypatch.setattr(eval_cli, "make_agent", make_fake_agent)
    out = tmp_path / "answers.json"
    args = ["eval", str(query), "--images", str(catalogue.folder), "--out", str(out), "--no-progress"]
    result = runner.invoke(app, [*args, "--engine", "ray", "--workers", "2"])
    assert result.exit_code == 1, result.output  # one question fails (retried on --resume)
    assert "computed now" in result.output and json.loads(out.read_text(encoding="utf-8"))[1]["related_image"]
    resumed = runner.invoke(app, [*args, "--engine", "ray", "--resume"])
    assert "from the journal (resume)" in resumed.output
    line = next(x for x in resumed.output.splitlines() if "from the journal" in x)
    assert line.replace("│", " ").split()[-1] == "9"  # answers reused; the kept failure is listed as failed
