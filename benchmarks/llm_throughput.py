"""LLM throughput of the in-process engine (xllamacpp) and, side by side, llama-cpp-python.

    python benchmarks/llm_throughput.py [--gguf PATH] [--threads 2] [--parallel 1 2 4]
    python benchmarks/llm_throughput.py --llama-cpp-python /tmp/lcpp/bin/python   # + the other engine

Default GGUF: the offline Qwen2.5-Coder-1.5B (``vlagent models fetch offline``). For each engine:
load time, prompt tokens/s (a long prompt, cache off), generation tokens/s, schema-valid
structured output, and for the in-process engine 8 classification-sized requests (a shared
system prefix, a short question, 16 output tokens) one after the other and from 8 threads over
1, 2, 4 slots: wall time and requests/min. ``--llama-cpp-python PYTHON`` runs the same single-
request measurements with llama-cpp-python in that interpreter (e.g. a venv where it was built
with ``CMAKE_ARGS=-DGGML_NATIVE=OFF``); its ``Llama`` is not thread-safe, so requests from
several threads queue behind one lock there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from vlagent.models.llama_engine import EngineConfig, LlamaEngine
from vlagent.settings import Settings

SYSTEM = (
    "Classify a shopper's question about product images into one of: retrieve, recommend, describe, "
    "vqa, ocr, compare, chat. retrieve: find the catalogue image matching a title. recommend: suggest "
    "products. describe: describe the image. vqa: one visual detail (colour, fabric, pattern). ocr: text "
    "printed on a label or tag. compare: two or more images. chat: no image needed. Reply with the type."
)
QUESTIONS = [
    "请对给定的图片进行描述。", "请匹配到与 红色连衣裙女夏季新款 最相关的图片。", "这款衬衫的面料是什么？",
    "What does the label say?", "你好，怎么退货？", "Which of these two shoes looks more formal?",
    "这件衣服是什么颜色的？", "推荐几款类似的包",
]  # fmt: skip
LONG_PROMPT = "请用一句话总结下面的商品描述。" + "这是一件纯棉的白色短袖T恤，圆领，宽松版型，适合夏天穿。" * 12
SCHEMA = {
    "type": "object",
    "properties": {"type": {"enum": ["retrieve", "recommend", "describe", "vqa", "ocr", "compare", "chat"]}},
    "required": ["type"],
}


def post(engine: LlamaEngine, body: dict[str, object]) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {engine.api_key}"}
    return httpx.post(engine.base_url + "/chat/completions", json=body, headers=headers, timeout=600).json()


def single(engine: LlamaEngine) -> dict[str, float]:
    body = {"messages": [{"role": "user", "content": LONG_PROMPT}], "max_tokens": 64, "cache_prompt": False}
    out = post(engine, body)
    t = out["timings"]  # type: ignore[index]
    valid = 0
    for q in QUESTIONS:
        reply = post(engine, {
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}], "max_tokens": 24,
            "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}},
        })  # fmt: skip
        try:
            valid += json.loads(reply["choices"][0]["message"]["content"])["type"] in SCHEMA["properties"]["type"]["enum"]  # type: ignore[index]
        except (ValueError, KeyError, TypeError):
            pass
    return {"prompt_tps": t["prompt_per_second"], "gen_tps": t["predicted_per_second"], "valid": valid}


def classify_batch(engine: LlamaEngine, threads: int) -> tuple[float, int]:
    def one(q: str) -> int:
        out = post(engine, {
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}], "max_tokens": 16,
        })  # fmt: skip
        return int(out["usage"]["prompt_tokens_details"]["cached_tokens"])  # type: ignore[index]

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        cached = sum(pool.map(one, QUESTIONS))
    return time.perf_counter() - start, cached


def answer_batch(engine: LlamaEngine, threads: int) -> tuple[float, int]:
    """Answer-sized requests: a short prompt of facts, 64 generated tokens (generation-bound)."""

    def one(q: str) -> int:
        out = post(engine, {"messages": [{"role": "user", "content": f"用两句话回答：{q}"}], "max_tokens": 64, "ignore_eos": True})
        return int(out["usage"]["completion_tokens"])  # type: ignore[index]

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        tokens = sum(pool.map(one, QUESTIONS))
    return time.perf_counter() - start, tokens


LLAMA_CPP_PYTHON = r"""
import json, sys, time
from llama_cpp import Llama
path, threads = sys.argv[1], int(sys.argv[2])
t = time.perf_counter(); llm = Llama(model_path=path, n_ctx=2048, n_threads=threads, verbose=False); load = time.perf_counter() - t
prompt = json.loads(sys.argv[3])
t = time.perf_counter(); out = llm.create_chat_completion(messages=[{"role": "user", "content": prompt}], max_tokens=1)
pp = out["usage"]["prompt_tokens"] / (time.perf_counter() - t)
t = time.perf_counter(); out = llm.create_chat_completion(messages=[{"role": "user", "content": "Count from one to forty in words."}], max_tokens=64)
gen = out["usage"]["completion_tokens"] / (time.perf_counter() - t)
print(json.dumps({"load_s": load, "prompt_tps": pp, "gen_tps": gen}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--llama-cpp-python", default=None, help="an interpreter where llama_cpp imports")
    args = parser.parse_args()
    gguf = args.gguf or Settings(profile="offline").resolved_gguf
    print(f"model {gguf.name}, {args.threads} threads", flush=True)
    for n in args.parallel:
        t = time.perf_counter()
        engine = LlamaEngine.embedded(EngineConfig(model=gguf, alias=gguf.name, n_ctx=2048, n_parallel=n, n_threads=args.threads))
        load = time.perf_counter() - t
        if n == args.parallel[0]:
            s = single(engine)
            print(f"xllamacpp: load {load:.1f} s, prompt {s['prompt_tps']:.1f} tok/s, generation {s['gen_tps']:.1f} tok/s, "
                  f"structured output valid {s['valid']}/{len(QUESTIONS)}", flush=True)  # fmt: skip
            seq, cached = classify_batch(engine, 1)
            print(f"  8 classifications one at a time: {seq:.1f} s ({60 * 8 / seq:.0f}/min), cached prompt tokens {cached}", flush=True)
        cold, _ = classify_batch(engine, 8)  # each slot computes the shared prefix once
        wall, cached = classify_batch(engine, 8)
        print(f"  8 classifications from 8 threads, {n} slot(s): {wall:.1f} s ({60 * 8 / wall:.0f}/min) warm, "
              f"{cold:.1f} s cold, cached prompt tokens {cached}", flush=True)
        answers, cached = answer_batch(engine, 8 if n > 1 else 1)
        print(f"  8 answers of 64 tokens from {8 if n > 1 else 1} thread(s), {n} slot(s): {answers:.1f} s "
              f"({60 * 8 / answers:.0f}/min)", flush=True)
        engine.close()
    if args.llama_cpp_python:
        out = subprocess.run(
            [args.llama_cpp_python, "-c", LLAMA_CPP_PYTHON, str(gguf), str(args.threads), json.dumps(LONG_PROMPT)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"llama-cpp-python: load {r['load_s']:.1f} s, prompt {r['prompt_tps']:.1f} tok/s, generation {r['gen_tps']:.1f} tok/s "
              "(one request at a time: its Llama is not thread-safe)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
