"""The self-check behind ``vlagent doctor``: each model role runs one tiny real inference in a
child process, so a native crash (SIGSEGV, SIGILL, out of memory) is one line, not a dead caller.

* :func:`check_role` asks the loader whether the role is here (no weights, no network), then runs
  ``python -m vlagent.models.selfcheck ROLE`` with the caller's settings: the child runs the
  role's own self-check (``RoleSpec.selfcheck``, in its capability module: it loads the model and
  runs one inference — a chat reply of a few tokens, an image and a text embedding, a caption, a
  VQA answer, OCR on a rendered word, a text embedding) and prints one JSON line. A signal, a timeout or an error becomes :class:`RoleCheck` ``detail`` and ``fix``.
* :func:`ensure_llm_runs` is what ``vlagent eval``, ``ask``, ``chat``, ``ui`` and ``serve api``
  call before loading an in-process LLM: the check runs once per engine build, CPU and model
  file, its success is remembered under ``HOME/selfcheck/``, and a failure raises
  :class:`EngineCrashError` with the one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vlagent.errors import VlagentError, one_line
from vlagent.models import loader
from vlagent.models.llama_engine import LLAMA_INSTALL_HINT, engine_version
from vlagent.models.roles import ROLES, spec
from vlagent.settings import Settings

SETTINGS_ENV = "VLAGENT_SELFCHECK_SETTINGS"
SECRET_FIELDS = {"web_auth", "api_token"}  # never handed to the child; no role needs them

#: the roles each profile cannot do without (doctor exits 1 when one of them cannot run)
REQUIRED: dict[str, tuple[str, ...]] = {
    "hub": ("llm", "clip", "vqa", "ocr"),
    "offline": ("llm", "ocr", "text_embedder"),
}


class EngineCrashError(VlagentError):
    """A model engine cannot run on this machine (it crashed, hung or failed in its self-check)."""

    exit_code = 1  # the CLI's exit code: the machine, not the input, is the problem


class RoleCheck(BaseModel):
    """One role's line in ``vlagent doctor``."""

    role: str
    backend: str
    model: str
    where: str = ""
    available: bool
    required: bool
    ran: bool = False
    ok: bool = False
    seconds: float | None = None
    detail: str = ""
    fix: str = ""

    @property
    def blocking(self) -> bool:
        """A role the profile needs that cannot run here (not here, or its check failed; with
        ``--no-run`` only whether it is here is known)."""
        return self.required and not (self.ok if self.ran else self.available)

    def line(self) -> str:
        """The one line for a failed check: role, engine, what happened, what to do."""
        what = f"{self.role} ({self.backend}, {self.model})"
        return f"{what}: {self.detail}" + (f"; {self.fix}" if self.fix else "")


# ----------------------------------------------------------------------------------------
# the child: the role's own self-check, one tiny inference
# ----------------------------------------------------------------------------------------
def child_main(role: str) -> int:
    """Run ``role``'s self-check with the settings the parent passed; print one JSON line."""
    raw = os.environ.get(SETTINGS_ENV)
    settings = Settings.model_validate_json(raw) if raw else Settings()
    start = time.perf_counter()
    try:
        check = spec(role).selfcheck
        if check is None:
            raise VlagentError(f"{role}: no self-check")
        detail = check(settings)
    except Exception as exc:  # noqa: BLE001 - every failure is the check's answer
        print(json.dumps({"ok": False, "detail": one_line(exc)}), flush=True)
        return 1
    print(json.dumps({"ok": True, "detail": detail, "seconds": round(time.perf_counter() - start, 2)}), flush=True)
    return 0


# ----------------------------------------------------------------------------------------
# the parent
# ----------------------------------------------------------------------------------------
def _fix_for_crash(role: str, backend: str) -> str:
    if role == "llm" and backend == "llama-cpp":
        return (
            "this llama.cpp build does not run on this CPU: reinstall the portable wheel "
            f"(pip install --force-reinstall --no-cache-dir xllamacpp; {LLAMA_INSTALL_HINT}) "
            "or serve the LLM elsewhere (VLAGENT_LLM_BASE_URL)"
        )
    return f"switch the {role} role off or point it at another model (see `vlagent models list`)"


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _child_env(settings: Settings) -> dict[str, str]:
    payload = settings.model_dump_json(exclude=SECRET_FIELDS)
    return {**os.environ, SETTINGS_ENV: payload, "PYTHONFAULTHANDLER": "0"}


def check_role(role: str, settings: Settings, *, run: bool = True, timeout: float = 300.0) -> RoleCheck:
    """Whether ``role`` is here and, when it is and ``run``, whether it runs (in a child process)."""
    status = loader.status(role, settings)
    required = role in REQUIRED.get(settings.profile, ()) and status.backend != "none"
    check = RoleCheck(
        role=role, backend=status.backend, model=status.model, where=status.where,
        available=status.available, required=required,
    )  # fmt: skip
    if not status.available:
        return check.model_copy(update={"detail": status.reason or "not available", "fix": ""})
    if not run:
        return check
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "vlagent.models.selfcheck", role], env=_child_env(settings),
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return check.model_copy(update={
            "ran": True, "seconds": timeout, "detail": f"did not finish one inference in {timeout:g} s",
            "fix": "the machine may be overloaded or the model too large for it; try again when idle",
        })  # fmt: skip
    seconds = round(time.perf_counter() - start, 2)
    if proc.returncode < 0:
        name = _signal_name(proc.returncode)
        why = "killed (out of memory?)" if name == "SIGKILL" else f"crashed with {name}"
        return check.model_copy(update={
            "ran": True, "seconds": seconds, "detail": f"the engine {why} in its first inference",
            "fix": "free memory or choose a smaller model" if name == "SIGKILL" else _fix_for_crash(role, status.backend),
        })  # fmt: skip
    result = _last_json(proc.stdout)
    if result is None:
        tail = one_line(Exception(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no output"))
        return check.model_copy(update={"ran": True, "seconds": seconds, "detail": f"the check exited {proc.returncode}: {tail}"})
    return check.model_copy(update={
        "ran": True, "ok": bool(result.get("ok")), "seconds": seconds, "detail": str(result.get("detail", "")),
    })  # fmt: skip


def _last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and "ok" in value:
            return value
    return None


def check_all(settings: Settings, *, run: bool = True, timeout: float = 300.0) -> list[RoleCheck]:
    return [check_role(role, settings, run=run, timeout=timeout) for role in ROLES]


# ----------------------------------------------------------------------------------------
# once per engine build and CPU: before an in-process LLM is loaded
# ----------------------------------------------------------------------------------------
def _cpu() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    wanted = [line for line in info.splitlines() if line.startswith(("model name", "flags"))][:2]
    return platform.machine() + "|" + "|".join(wanted)


def llm_fingerprint(settings: Settings) -> str:
    """Engine build + CPU + model file: what decides whether the in-process LLM can run here."""
    gguf = settings.resolved_gguf
    stat = gguf.stat()
    parts = [engine_version(), _cpu(), str(gguf.resolve()), str(stat.st_size), str(int(stat.st_mtime))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def ensure_llm_runs(settings: Settings) -> RoleCheck | None:
    """Check the in-process LLM once per fingerprint before loading it; raise on failure.

    Returns the check that ran (None when it was remembered or is not needed: a server or no LLM).
    """
    if not settings.llm_selfcheck or loader.status("llm", settings).backend != "llama-cpp":
        return None
    if not settings.resolved_gguf.is_file():
        return None  # the load reports the missing file with its fetch hint
    marker = Path(settings.home) / "selfcheck" / f"llm-{llm_fingerprint(settings)}.json"
    if marker.is_file():
        return None
    check = check_role("llm", settings)
    if not check.ok:
        raise EngineCrashError(f"the LLM cannot run here: {check.line()}")
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(check.model_dump_json(), encoding="utf-8")
    tmp.replace(marker)
    return check


__all__ = ["REQUIRED", "EngineCrashError", "RoleCheck", "check_all", "check_role", "ensure_llm_runs", "llm_fingerprint"]


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1]))
