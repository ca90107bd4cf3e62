"""A scripted stand-in for the agent, for the harness tests: counts calls, can fail or crash."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from vlagent.agent.types import Answer, RetrievedImage, ToolTrace

COLOURS = {"red": "红色", "blue": "蓝色", "black": "黑色", "white": "white"}


class FakeAgent:
    """Answers from the question text alone, deterministically.

    - a question containing "匹配" or "Find" → retrieve, ranking ``ranking`` (or the gold image
      guessed from the text) first;
    - one containing "FAIL" → raises RuntimeError (a question that fails);
    - the ``crash_on``-th call (1-based) raises ``crash`` (KeyboardInterrupt, SystemExit...).
    """

    def __init__(
        self,
        crash_on: int | None = None,
        crash: type[BaseException] = KeyboardInterrupt,
        catalogue: list[str] | None = None,
    ) -> None:
        self.crash_on = crash_on
        self.crash = crash
        self.catalogue = catalogue or ["a.jpg", "b.jpg", "c.jpg"]
        self.calls: Counter[str] = Counter()
        self.n_calls = 0
        self.prepared: list[list[dict[str, Any]]] = []
        self.configs: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def prepare(self, items: list[dict[str, Any]]) -> None:
        self.prepared.append(items)

    def invoke(self, question: dict[str, Any], config: dict[str, Any] | None = None) -> Answer:
        with self._lock:
            self.n_calls += 1
            n = self.n_calls
            self.calls[question["question"]] += 1
            self.configs.append(config or {})
        if self.crash_on is not None and n == self.crash_on:
            raise self.crash()
        text = question["question"]
        if "FAIL" in text:
            raise RuntimeError("scripted failure")
        if "匹配" in text or "Find" in text:
            words = text.replace(":", " ").split()
            wanted = [c for c in self.catalogue if c.split(".")[0] in words]
            ranked = wanted + [c for c in self.catalogue if c not in wanted]
            return Answer(
                text=f"最相关的图片是 {ranked[0]}",
                type="retrieve",
                images=[RetrievedImage(image=f"image/{r}", score=1.0 - 0.1 * k) for k, r in enumerate(ranked)],
                trace=[ToolTrace(name="clip_search")],
            )
        if "颜色" in text or "colour" in text:
            image = (question.get("images") or ["?"])[0]
            colour = next((v for k, v in COLOURS.items() if k in image), "灰色")
            return Answer(text=colour, type="vqa", trace=[ToolTrace(name="vqa")])
        if question.get("images"):
            return Answer(
                text=f"描述 {', '.join(question['images'])}",
                type="describe",
                trace=[ToolTrace(name="caption", ok=False, error="no model")],
            )
        return Answer(text="你好", type="chat")


def make_fake_agent(images: list[Any], annotations: Any) -> FakeAgent:
    """An agent factory as ``vlagent.cli.eval_cmd.make_agent`` (for the Ray harness: runs in each actor)."""
    return FakeAgent()


def make_broken_agent(images: list[Any], annotations: Any) -> FakeAgent:
    """A factory whose model cannot load."""
    from vlagent.errors import ModelLoadError

    raise ModelLoadError("cannot load LLM 'no-such-model': looked in the cache; set VLAGENT_LLM_MODEL")
