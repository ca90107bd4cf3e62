"""``benchmarks/gpu_bench.py --small``: the GPU benchmark's code (real-config builders, the
loaders' placement, indexing with decode processes, captions, in-process VQA, the agent end to
end) run with tiny models on CPU, so the full run on a GPU machine is known to work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlagent.models.placement import resolve_dtype

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_bench_small_runs_every_part(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    env = {**os.environ, "VLAGENT_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_bench.py"), "--small", "--work", str(tmp_path / "work"), "--json", str(out)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(out.read_text())
    rows = {r["measure"]: r for r in got["rows"]}
    facts = got["facts"]
    index = rows["Chinese-CLIP ViT-B/16 indexing from JPEG files (decode included)"]
    assert index["before"] > 0 and index["after"] > 0 and "1,100" in index["anchor"]
    assert rows["`vlagent index` into Chroma (embedded)"]["after"] > 0
    assert "decode processes 2" in facts["clip"]  # the GPU path (DataLoader workers) ran
    assert rows["BLIP-base captions"]["before"] > 0 and rows["BLIP-base captions"]["after"] > 0
    vqa = rows["Qwen2-VL-2B VQA in-process"]
    assert vqa["before"] > 0 and vqa["after"] > 0
    # the bf16 checkpoint runs in float32 on a CPU without native bf16, in bf16 on one with it
    assert facts["vqa in-process"].startswith(resolve_dtype("auto", "cpu", "generator"))
    assert rows["one vqa question end to end (`agent.invoke`)"]["after"] > 0
    vllm = rows["Qwen2-VL-2B VQA through vLLM"]
    if not os.environ.get("VLAGENT_VLLM_PYTHON"):
        assert vllm["note"].startswith("not run: vLLM is not installed")
    assert "| measure | unit | before | after |" in done.stdout  # the printed table
