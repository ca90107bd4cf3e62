"""``scripts/gpu_smoke.py``, the real-weights check for the first machine with the hub: its
mechanics run here on what is real offline (rapidocr) and on a tiny CLIP (the fine-tune resume);
one line per check, JSON results, exit 1 on a failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _smoke(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_smoke.py"), *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env}, cwd=cwd,
    )  # fmt: skip


def test_smoke_checks_ocr_and_the_finetune_resume(tiny_clip, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "smoke.json"
    env = {"VLAGENT_HOME": str(tmp_path / "home"), "VLAGENT_CLIP_MODEL": tiny_clip["chinese_clip"][0], "VLAGENT_DEVICE": "cpu"}
    done = _smoke(["--only", "ocr,finetune,serve", "--json", str(out)], env, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = {r["check"]: r for r in json.loads(out.read_text())}
    assert results["ocr"]["status"] == "PASS" and "COTTON" in results["ocr"]["detail"].upper()
    assert results["finetune"]["status"] == "PASS" and "resumed from epoch 1, step 2" in results["finetune"]["detail"]
    if not os.environ.get("VLAGENT_VLLM_PYTHON"):
        assert results["serve"]["status"] == "SKIP"
    assert "PASS  ocr" in done.stdout


def test_a_failing_check_is_one_line_and_exit_1(tmp_path: Path) -> None:
    env = {"VLAGENT_HOME": str(tmp_path / "home"), "VLAGENT_CLIP_MODEL": str(tmp_path / "no-such-model")}
    done = _smoke(["--only", "clip"], env, tmp_path)
    assert done.returncode == 1
    (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("FAIL")]
    assert "clip" in line and "no-such-model" in line and "Traceback" not in done.stdout + done.stderr
