#!/usr/bin/env python
"""Latency and throughput of `vlagent serve api` over loopback: what HTTP, uploads and SSE add
to an answer, against the same question through ``agent.invoke`` in-process.

    python benchmarks/api_bench.py                     # 20 requests per mode, 1 and 4 clients
    python benchmarks/api_bench.py -n 50 --clients 1 8

The agent is real (colours tool, rule classifier, no LLM: ``VLAGENT_LLM_BACKEND=none``, other
models off) over the sample suite's 20 images, so the figures are the serving overhead plus a
~20 ms tool, not model time. The server is uvicorn in this process on 127.0.0.1 and a free
port; every request loop is bounded by ``-n``.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

SUITE = Path(__file__).resolve().parents[1] / "evals" / "suites" / "sample"
QUESTION = "这件衣服是什么颜色的？"


def figures(label: str, seconds: list[float], wall: float) -> None:
    s = sorted(seconds)
    p95 = s[min(len(s) - 1, int(0.95 * len(s)))]
    print(f"{label:<52} p50 {statistics.median(s) * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  {len(s) / wall:6.1f} req/s")


def run(label: str, n: int, clients: int, call) -> None:  # type: ignore[no-untyped-def]
    call(0)  # warm-up
    times: list[float] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        t0 = time.perf_counter()
        call(i)
        with lock:
            times.append(time.perf_counter() - t0)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(n)))
    figures(f"{label} ({clients} client{'s' if clients > 1 else ''})", times, time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="requests per mode (bounded)")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    args = ap.parse_args()

    os.environ.setdefault("VLAGENT_HOME", tempfile.mkdtemp(prefix="vlagent-api-bench-"))
    for key, value in {"LLM_BACKEND": "none", "CAPTION_BACKEND": "none", "VQA_BACKEND": "none",
                       "OCR_BACKEND": "none", "CLIP_BACKEND": "none"}.items():  # fmt: skip
        os.environ.setdefault(f"VLAGENT_{key}", value)
    import uvicorn

    from vlagent.api.app import create_app
    from vlagent.api.service import AgentService
    from vlagent.serving.process import free_port
    from vlagent.settings import Settings

    images = sorted(p.name for p in (SUITE / "images").iterdir() if p.suffix == ".jpg")
    service = AgentService.from_settings(Settings(), [SUITE / "images"], SUITE / "train_annotation.csv")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    upload = (SUITE / "images" / images[0]).read_bytes()
    data_url = "data:image/jpeg;base64," + base64.b64encode(upload).decode()
    print(f"agent: tools {sorted(service.agent.parts.tools)}; {len(images)} catalogue images; {os.cpu_count()} CPUs")
    for name in images + ["a.jpg"]:  # warm the per-image colour cache: every mode then measures the same work
        service.agent.invoke(QUESTION, images=[str(SUITE / "images" / images[0]) if name == "a.jpg" else name])

    with httpx.Client(timeout=60) as http:
        for clients in args.clients:
            run("in-process agent.invoke", args.n, clients,
                lambda i: service.agent.invoke(QUESTION, images=[images[i % len(images)]]))  # fmt: skip
            run("GET /health", args.n, clients, lambda i: http.get(f"{url}/health").raise_for_status())
            run("POST /v1/answer (catalogue name, JSON)", args.n, clients,
                lambda i: http.post(f"{url}/v1/answer", json={"question": QUESTION, "images": [images[i % len(images)]]}).raise_for_status())  # fmt: skip
            run("POST /v1/answer (multipart upload)", args.n, clients,
                lambda i: http.post(f"{url}/v1/answer", data={"question": QUESTION}, files={"files": ("a.jpg", upload, "image/jpeg")}).raise_for_status())  # fmt: skip
            run("POST /v1/answer stream=true (SSE)", args.n, clients,
                lambda i: http.post(f"{url}/v1/answer", json={"question": QUESTION, "images": [images[i % len(images)]], "stream": True}).raise_for_status())  # fmt: skip
            run("POST /v1/chat/completions (data URL)", args.n, clients,
                lambda i: http.post(f"{url}/v1/chat/completions", json={"model": "vlagent", "messages": [{"role": "user", "content": [
                    {"type": "text", "text": QUESTION}, {"type": "image_url", "image_url": {"url": data_url}}]}]}).raise_for_status())  # fmt: skip
    server.should_exit = True
    thread.join(10)
    service.close()


if __name__ == "__main__":
    main()
