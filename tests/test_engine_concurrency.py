"""Several questions at once through one in-process llama.cpp engine (its slots, no Python lock):
every question is answered, each from its own image (the real SmolLM2 GGUF; its words are not
asserted, only the plumbing)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from vlagent import build_agent
from vlagent.settings import Settings

SAMPLE = Path(__file__).resolve().parents[1] / "evals" / "suites" / "sample" / "images"
IMAGES = ["red_dress.jpg", "blue_shirt.jpg", "green_skirt.jpg", "yellow_tshirt.jpg",
          "pink_hoodie.jpg", "black_trousers.jpg", "white_sneakers.jpg", "grey_cap.jpg"]  # fmt: skip


class InFlight(BaseCallbackHandler):
    """The most LLM calls that were running at the same moment."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def on_chat_model_start(self, *args: object, **kwargs: object) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def on_llm_end(self, *args: object, **kwargs: object) -> None:
        with self.lock:
            self.now -= 1

    def on_llm_error(self, *args: object, **kwargs: object) -> None:
        self.on_llm_end()


@pytest.mark.slow
def test_eight_questions_at_once_each_answered_from_its_own_image(smollm_gguf: Path, tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home", llm_backend="llama-cpp", llm_gguf=smollm_gguf, llm_n_threads=2,
        llm_n_ctx=2048, llm_max_tokens=16, llm_parallel=4, clip_backend="none", caption_backend="none",
        vqa_backend="none", ocr_backend="none",
    )  # fmt: skip
    agent = build_agent(settings, images=[SAMPLE], auto_index=False)
    assert agent.parts.llm is not None
    flight = InFlight()
    agent.parts.llm.callbacks = [flight]

    def ask(image: str) -> object:
        # colour and another ask: the LLM writes it (colour alone would be the measured colour, no LLM)
        return agent.invoke({"question": "What colour is this product, and what is it made of?", "images": [image]})

    start = time.monotonic()
    with ThreadPoolExecutor(len(IMAGES)) as pool:
        answers = list(pool.map(ask, IMAGES))
    assert time.monotonic() - start < 300
    for image, answer in zip(IMAGES, answers):
        others = [i for i in IMAGES if i != image]
        assert answer.error is None and answer.text.strip(), (image, answer.error)
        assert any(image in e for e in answer.evidence), (image, answer.evidence)
        assert not any(o in e for e in answer.evidence for o in others), (image, answer.evidence)
        assert [t.name for t in answer.trace][0] == "understand"  # its decision is SmolLM2's: not asserted
    assert flight.most >= 2  # the calls overlapped: no lock serialised them
