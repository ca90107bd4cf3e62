"""The agent's LLM calls through a real OpenAI-compatible server (llama.cpp's, started by the
same machinery as `vlagent serve`, on the real SmolLM2 GGUF), and through a dead URL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from vlagent.agent.understand import llm_name
from vlagent.agent.vote import Fusion, write_fusion
from vlagent import build_agent
from vlagent.agent.types import Classification
from vlagent.evals.harness import run_eval
from vlagent.serving.process import free_port
from vlagent.settings import Settings


def _no_vision(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"caption_backend": "none", "vqa_backend": "none", "clip_backend": "none"}
    )


class Calls(BaseCallbackHandler):
    """Counts the chat-model calls that came back from the server, and those that failed."""

    def __init__(self) -> None:
        self.ok = 0
        self.classify_ok = 0  # of them, the classifier's (one-token scoring, then JSON if it found no type)
        self.errors: list[str] = []
        self.stage: dict[Any, str] = {}

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: Any, **kwargs: Any) -> None:
        params = kwargs.get("invocation_params") or {}
        self.stage[run_id] = "classify" if params.get("logprobs") or params.get("response_format") or params.get("tools") else "answer"

    def on_llm_end(self, response: Any, *, run_id: Any = None, **kwargs: Any) -> None:
        self.ok += 1
        self.classify_ok += self.stage.get(run_id) == "classify"

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.errors.append(repr(error))


def test_server_answers_the_agents_classify_and_answer_calls(llama_server_settings, label_images) -> None:  # type: ignore[no-untyped-def]
    """Plumbing only: what SmolLM2 decides (the type, the words) is not asserted."""
    label = str(label_images["label_en.png"])
    settings = _no_vision(llama_server_settings).model_copy(update={"classifier_timeout": 120.0})  # a cold prompt prefix
    agent = build_agent(settings, allow_files=[label])
    assert agent.parts.llm is not None and "llm" not in agent.parts.unavailable
    # a fusion fit that always asks this LLM: its vote runs end to end through the server
    write_fusion(Fusion(model=llm_name(agent.parts.llm), learned_weight=1.0, llm_weight=1.0, ask_below=1.01), settings.home / "fusion")
    calls = Calls()
    agent.parts.llm.callbacks = [calls]  # the classifier and the answer writer share this model
    answer = agent.invoke("What does the label say?", images=[label])
    names = [t.name for t in answer.trace]
    assert names[0] == "understand" and calls.ok >= 1
    classify_calls = calls.classify_ok
    assert 1 <= classify_calls <= 2  # one token scored; JSON asked when no alternative named a type
    assert all("LengthFinishReasonError" in e or "OutputParser" in e for e in calls.errors), calls.errors
    understood = answer.trace[0]
    # the schema held: the trace holds a valid intent, pooled with the LLM's vote (or the learned
    # model's alone, and then why)
    decided = Classification.model_validate({k: v for k, v in understood.output.items() if k in Classification.model_fields})
    assert decided.type is answer.type and understood.output["source"] == answer.classifier
    assert answer.classifier == "fused" or (answer.classifier == "learned" and understood.error.startswith("llm vote failed"))
    # the answer: from evidence through the server, or an error saying why there is none
    if answer.error is None:
        assert answer.text.strip()
        assert answer.evidence or answer.type == "chat"
        if "answer_llm" in names:
            (written,) = [t for t in answer.trace if t.name == "answer_llm"]
            assert written.ok and calls.ok == classify_calls + 1, written.error
    else:
        assert answer.text == "" and "answer_llm" not in names and calls.ok == classify_calls
    # OCR read the label whenever the question was routed to it
    assert all(t.ok for t in answer.trace if t.name == "ocr")
    # the LLM saw image names, never the file-system path (the answer prompt)
    assert all(label not in str(t.args) for t in answer.trace if t.name == "answer_llm")


def test_dead_llm_url_is_named_per_question_and_the_harness_goes_on(catalogue, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{free_port()}/v1"
    settings = _no_vision(
        Settings(
            home=tmp_path / "home", llm_backend="openai", llm_base_url=url, llm_model="m",
            request_timeout=3, max_retries=0,
        )  # fmt: skip
    )
    agent = build_agent(settings, images=[catalogue.folder], annotations=catalogue.csv)
    write_fusion(Fusion(model=llm_name(agent.parts.llm), llm_weight=1.0, ask_below=1.01), settings.home / "fusion")  # it is asked
    first, second = catalogue.names[:2]
    query = tmp_path / "query.json"
    query.write_text(
        json.dumps(
            [
                {"question": "这件衣服是什么颜色的？", "related_image": first, "answer": ""},
                {"question": f"请匹配到与 {catalogue.titles[second]} 最相关的图片。", "related_image": "", "answer": ""},
            ],
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    run = run_eval(agent, query, tmp_path / "answers.json", images=[catalogue.folder], progress=False)
    assert run.summary.failed == [] and len(run.entries) == 2
    colour = run.entries[0]
    assert colour.classifier == "learned"  # the LLM is down: its vote failed, the learned model decided
    assert any(url in err for err in colour.tool_errors), colour.tool_errors
    assert colour.text.strip()  # answered from the colour tool
    out = json.loads((tmp_path / "answers.json").read_text(encoding="utf-8"))
    assert out[1]["related_image"] == second  # title search needs no LLM
