"""LLM throughput: in-process llama.cpp vs llama.cpp's server, and structured-output validity.

    python benchmarks/llm_throughput.py [--gguf PATH] [--threads 2] [--tokens 96]

Default GGUF: the offline Qwen2.5-Coder-1.5B (``vlagent models fetch offline``). Reports load
time, prompt (time to first token) and generation tok/s (tokens after the first / their time),
and how many classification questions gave schema-valid structured output.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from vlagent.llm import build_chat_model, load_llama, structured_llm
from vlagent.models import loader
from vlagent.serving.commands import llama_cpp_command
from vlagent.serving.process import ServerProcess, free_port
from vlagent.settings import Settings

PROMPT = "用三到五句话介绍一下杭州的西湖。"
QUESTIONS = [
    "请对给定的图片进行描述。",
    "请匹配到与 红色连衣裙女夏季新款 最相关的图片。",
    "这款衬衫的面料是什么？",
    "What does the label say?",
    "你好",
    "Which of these two shoes looks more formal?",
]


class Route(BaseModel):
    kind: Literal["describe", "retrieve", "vqa", "ocr", "compare", "chitchat"]
    language: Literal["zh", "en"]


def measure(llm: object, label: str) -> None:
    start = time.perf_counter()
    first = None
    n = 0
    for chunk in llm.stream(PROMPT):  # type: ignore[attr-defined]
        if chunk.content:
            n += 1  # llama.cpp streams one token per chunk
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None
    gen = (n - 1) / (end - first) if n > 1 else 0.0
    print(f"{label}: first token {first - start:.2f} s, {n} tokens, generation {gen:.2f} tok/s", flush=True)
    valid = 0
    t0 = time.perf_counter()
    for q in QUESTIONS:
        try:
            out = structured_llm(llm, Route).invoke(  # type: ignore[arg-type]
                "Classify the user question: kind (describe, retrieve, vqa, ocr, compare, chitchat) and "
                f"language (zh or en). Question: {q}"
            )
            valid += 1
            print(f"  {q} -> {out.kind}/{out.language}", flush=True)
        except Exception as exc:  # noqa: BLE001 - counted, not raised
            print(f"  {q} -> FAIL {type(exc).__name__}: {str(exc)[:120]}", flush=True)
    print(f"{label}: structured output valid {valid}/{len(QUESTIONS)}, "
          f"{(time.perf_counter() - t0) / len(QUESTIONS):.1f} s per question", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gguf", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--skip-inproc", action="store_true")
    args = parser.parse_args()
    base = Settings(llm_gguf=args.gguf, llm_n_threads=args.threads, llm_max_tokens=args.tokens, llm_n_ctx=2048)
    if not args.skip_inproc:
        t = time.perf_counter()
        load_llama(str(base.resolved_gguf), base.llm_n_ctx, base.llm_n_threads, None)
        print(f"in-process load {time.perf_counter() - t:.1f} s ({base.resolved_gguf.name})", flush=True)
        measure(build_chat_model(base.model_copy(update={"llm_backend": "llama-cpp"})), "in-process llama.cpp")
        loader.clear("llm")  # free the in-process model before the server loads its own
    spec = llama_cpp_command(base.model_copy(update={"serve_llm_port": free_port()}))
    server = ServerProcess(spec, Path("/tmp/vlagent-bench-llama-server.log"))
    server.start()
    try:
        t = time.perf_counter()
        server.wait_ready(300)
        print(f"server ready {time.perf_counter() - t:.1f} s", flush=True)
        measure(
            build_chat_model(base.model_copy(update={
                "llm_backend": "openai", "llm_base_url": spec.base_url, "llm_model": spec.served_name})),
            "llama.cpp server",
        )  # fmt: skip
    finally:
        server.stop()


if __name__ == "__main__":
    main()
