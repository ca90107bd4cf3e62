"""Helpers for the web UI / HTTP API tests: the agent's environment with the tiny test models,
and real server processes on 127.0.0.1 that are always stopped."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def tiny_agent_env(home: Path, clip_model: str, **extra: str) -> dict[str, str]:
    """VLAGENT_* for a real agent on the tiny Chinese-CLIP, real colours, no LLM (the learned classifier decides,
    answers come from the tool results): plumbing only, in seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLAGENT_")}
    env.update(
        VLAGENT_HOME=str(home), VLAGENT_DEVICE="cpu", VLAGENT_CLIP_MODEL=clip_model, VLAGENT_CLIP_BATCH_SIZE="4",
        VLAGENT_CAPTION_BACKEND="none", VLAGENT_VQA_BACKEND="none", VLAGENT_OCR_BACKEND="none",
        VLAGENT_LLM_BACKEND="none", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false", ANONYMIZED_TELEMETRY="False", GRADIO_ANALYTICS_ENABLED="False",
        OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    env.update(extra)
    return env


@contextlib.contextmanager
def server_process(cmd: list[str], env: dict[str, str], ready_url: str, log: Path, timeout: float = 180,
                   cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:  # fmt: skip
    """Start ``cmd``, wait until GET ``ready_url`` answers 200, yield; always stop it."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{cmd[:4]} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
                try:
                    if httpx.get(ready_url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{ready_url} not ready after {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")
                time.sleep(0.5)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def vlagent_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "vlagent.cli.app", *args]


def data_url(path: Path) -> str:
    mime = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
