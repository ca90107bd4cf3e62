#!/usr/bin/env python
"""The question classifier's cost: milliseconds a question without an LLM, and the sample suite's
questions per minute when the LLM classifies every question (before issue 25) against the
learned classifier with the LLM voting only where the fit says (after), in one run.

    VLAGENT_PROFILE=offline python benchmarks/classifier_bench.py
    python benchmarks/classifier_bench.py --latency-only            # no LLM needed

1. **Latency, no LLM**: the understanding pass (:class:`Understander`: e5 embedding, n-grams,
   the linear layer, the copied query, the cues) over the first ``--questions`` labelled
   questions, one at a time after one warm-up: p50, p95, mean, and the e5 embedding's share.
2. **The sample suite** (47 questions, one ``agent.invoke`` at a time, the real agent with your
   settings), three modes on the same loaded models, each from an empty tool cache and after one
   untimed question that warms the LLM's prompt cache:

   * ``before``: the LLM asked on every question, with the prompt and one-token method the
     classifier used before, its vote deciding alone (a fusion that always asks, weight 0 for the
     learned model): what each question paid before issue 25. Its type accuracy is the LLM's
     own, not the old classifier's (its fifteen guards and keyword rules are gone);
   * ``after``: the shipped fusion for this LLM (the LLM asked only where the learned model is
     unsure), else the learned model alone;
   * ``learned``: the learned model alone.

   Each prints questions/min, the LLM's classification calls, and type accuracy against the
   suite's ``gold_type``. The machine's load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "evals" / "suites" / "sample"


def latency(n: int) -> None:
    from vlagent.agent.intent_model import shipped_model
    from vlagent.agent.intent_train import default_training_files, read_labelled
    from vlagent.agent.understand import Understander

    rows = [r for f in default_training_files() for r in read_labelled(f)][:n]
    understand = Understander()
    understand("warm up", [], None)
    model = shipped_model()
    total, embed = [], []
    for r in rows:
        t0 = time.perf_counter()
        model.embed([r.question])
        embed.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        understand(r.question, r.images, None)
        total.append(time.perf_counter() - t0)
    ms = sorted(x * 1000 for x in total)
    print(f"understanding pass, no LLM, {len(rows)} questions (load {os.getloadavg()[0]:.2f}):")
    print(f"  p50 {ms[len(ms) // 2]:.1f} ms  p95 {ms[int(len(ms) * 0.95)]:.1f} ms  mean {statistics.mean(ms):.1f} ms"
          f"  (of which the e5 embedding: mean {statistics.mean(embed) * 1000:.1f} ms)")  # fmt: skip


class Calls:
    """Counts the LLM's classification calls (the one-token, log-probability requests)."""

    def __init__(self) -> None:
        from langchain_core.callbacks import BaseCallbackHandler

        outer = self
        self.n = 0

        class Handler(BaseCallbackHandler):
            def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
                params = kwargs.get("invocation_params") or {}
                if params.get("logprobs") or params.get("response_format") or params.get("tools"):
                    outer.n += 1

        self.handler = Handler()


def sample_suite(modes: list[str]) -> None:
    from vlagent import build_agent
    from vlagent.agent.understand import Understander, llm_name
    from vlagent.agent.vote import Fusion, find_fusion, write_fusion
    from vlagent.cache import DiskCache
    from vlagent.settings import Settings

    items = json.loads((SAMPLE / "query.json").read_text("utf-8"))
    agent = build_agent(images=[SAMPLE / "images"], annotations=SAMPLE / "train_annotation.csv")
    llm = agent.parts.classifier_llm
    if llm is None:
        print("no LLM configured: the sample-suite comparison needs one (VLAGENT_PROFILE=offline)")
        return
    calls = Calls()
    llm.callbacks = [*(llm.callbacks or []), calls.handler]
    name = llm_name(llm)
    base = Settings()
    shipped = find_fusion(name, base.home)
    print(f"\nsample suite, {len(items)} questions, one at a time, LLM {name}; fusion: "
          f"{shipped.model_dump(exclude={'fitted_on'}) if shipped else 'none (the learned model alone)'}")  # fmt: skip
    for mode in modes:
        home = Path(tempfile.mkdtemp(prefix=f"vlagent-bench-{mode}-"))
        if mode == "before":
            write_fusion(Fusion(model=name, learned_weight=0.0, llm_weight=1.0, ask_below=1.01), home / "fusion")
        elif mode == "after" and shipped is not None:
            write_fusion(shipped, home / "fusion")
        settings = base.model_copy(update={"home": home, "classifier_llm_vote": mode != "learned"})
        agent.parts.classifier = Understander(settings, cards=agent.spec.cards)
        if agent.ctx is not None:
            agent.ctx.cache = DiskCache(home / "tools.sqlite")
        agent.invoke({"question": "请描述这张图片。", "images": ["red_dress.jpg"]})  # warm-up
        calls.n = 0
        right = 0
        t0 = time.perf_counter()
        for item in items:
            images = [i.strip() for i in str(item.get("related_image") or "").replace("，", ",").split(",") if i.strip()]
            answer = agent.invoke({"question": item["question"], "images": images})
            right += answer.type == item.get("gold_type")
        seconds = time.perf_counter() - t0
        print(f"  {mode:<8} {len(items) / seconds * 60:6.1f} questions/min  {seconds / len(items):.2f} s/question  "
              f"LLM classification calls {calls.n:3d}  type accuracy {right / len(items):.3f}  (load {os.getloadavg()[0]:.2f})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=200, help="labelled questions for the latency figure")
    ap.add_argument("--latency-only", action="store_true")
    ap.add_argument("--modes", nargs="+", default=["before", "after", "learned"], choices=["before", "after", "learned"])
    args = ap.parse_args()
    latency(args.questions)
    if not args.latency_only:
        sample_suite(args.modes)


if __name__ == "__main__":
    main()
