"""`vlagent doctor` and the LLM's self-check: real child processes, a real engine and a crashing one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlagent.models.selfcheck import EngineCrashError, ensure_llm_runs, llm_fingerprint
from vlagent.settings import Settings

#: loaded by every Python started with this folder on PYTHONPATH: the engine dies as a native
#: crash would (the parent CLI never starts the engine itself, only the checks' children do)
CRASHING_ENGINE = """
import os, signal
import vlagent.models.llama_engine as engine

def crash(self, config):
    os.kill(os.getpid(), signal.SIGSEGV)

engine.LlamaEngine.__init__ = crash
"""


def _env(home: Path, gguf: Path, crash_dir: Path | None = None) -> dict[str, str]:
    env = {
        **os.environ, "VLAGENT_HOME": str(home), "VLAGENT_PROFILE": "offline", "VLAGENT_LLM_GGUF": str(gguf),
        "VLAGENT_LLM_N_THREADS": "2", "VLAGENT_LLM_N_CTX": "512", "VLAGENT_OCR_BACKEND": "none", "COLUMNS": "200",
    }  # fmt: skip
    if crash_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(crash_dir), env.get("PYTHONPATH", "")])
    return env


def _vlagent(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vlagent.cli.app", *args], env=env, capture_output=True, text=True, timeout=600, cwd=cwd
    )


@pytest.fixture()
def crash_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "crash"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(CRASHING_ENGINE, encoding="utf-8")
    return folder


@pytest.mark.slow
def test_doctor_runs_each_role_in_a_child(smollm_gguf: Path, tmp_path: Path) -> None:
    result = _vlagent("doctor", "--json", env=_env(tmp_path / "home", smollm_gguf))
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["role"]: c for c in json.loads(result.stdout)}
    assert set(checks) == {"clip", "llm", "caption", "vqa", "ocr", "text_embedder"}
    llm = checks["llm"]
    assert (llm["backend"], llm["available"], llm["ran"], llm["ok"], llm["required"]) == ("llama-cpp", True, True, True, True)
    assert llm["detail"].startswith("replied")
    assert checks["text_embedder"]["ok"] and checks["text_embedder"]["ran"]
    assert checks["vqa"]["backend"] == "none" and not checks["vqa"]["ran"]  # off in the offline profile
    table = _vlagent("doctor", env=_env(tmp_path / "home", smollm_gguf))
    assert table.returncode == 0 and "vlagent doctor (profile offline)" in table.stdout
    assert "llama-cpp" in table.stdout and "ok" in table.stdout


@pytest.mark.slow
def test_doctor_turns_a_native_crash_into_one_line(smollm_gguf: Path, tmp_path: Path, crash_dir: Path) -> None:
    result = _vlagent("doctor", env=_env(tmp_path / "home", smollm_gguf, crash_dir))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("cannot run:")]
    assert len(lines) == 1, result.stdout
    assert "llm (llama-cpp" in lines[0] and "SIGSEGV" in lines[0] and "xllamacpp" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    as_json = json.loads(_vlagent("doctor", "--json", env=_env(tmp_path / "home", smollm_gguf, crash_dir)).stdout)
    llm = next(c for c in as_json if c["role"] == "llm")
    assert (llm["ran"], llm["ok"]) == (True, False) and "SIGSEGV" in llm["detail"]


@pytest.mark.slow
def test_ask_stops_with_the_line_before_loading_a_crashing_engine(
    smollm_gguf: Path, tmp_path: Path, crash_dir: Path
) -> None:
    image = Path(__file__).parent / "assets" / "label_en.png"
    result = _vlagent("ask", "What does the label say?", "--image", str(image), env=_env(tmp_path / "home", smollm_gguf, crash_dir))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the LLM cannot run here" in result.stderr and "SIGSEGV" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_llm_check_runs_once_per_engine_build_and_cpu(smollm_gguf: Path, tmp_path: Path) -> None:
    settings = Settings(profile="offline", llm_gguf=smollm_gguf, llm_n_threads=2, llm_n_ctx=512, home=tmp_path)
    first = ensure_llm_runs(settings)
    assert first is not None and first.ok  # ran in a child
    assert (tmp_path / "selfcheck" / f"llm-{llm_fingerprint(settings)}.json").is_file()
    assert ensure_llm_runs(settings) is None  # remembered: nothing runs
    assert ensure_llm_runs(settings.model_copy(update={"llm_selfcheck": False, "home": tmp_path / "other"})) is None
    assert ensure_llm_runs(Settings(llm_backend="none", home=tmp_path)) is None


def test_a_failed_check_raises_the_line(monkeypatch: pytest.MonkeyPatch, smollm_gguf: Path, tmp_path: Path) -> None:
    from vlagent.models import selfcheck

    def crashed(role: str, settings: Settings, **_: object) -> selfcheck.RoleCheck:
        return selfcheck.RoleCheck(
            role=role, backend="llama-cpp", model="m.gguf", available=True, required=True, ran=True,
            detail="the engine crashed with SIGILL in its first inference", fix="reinstall",
        )  # fmt: skip

    monkeypatch.setattr(selfcheck, "check_role", crashed)
    settings = Settings(profile="offline", llm_gguf=smollm_gguf, home=tmp_path)
    with pytest.raises(EngineCrashError, match="llm \\(llama-cpp, m.gguf\\): the engine crashed with SIGILL"):
        ensure_llm_runs(settings)
    assert not (tmp_path / "selfcheck").exists()  # failures are not remembered
