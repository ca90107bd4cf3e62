"""The agent's LLM calls through a real OpenAI-compatible server (llama.cpp's, started by the
same machinery as `vlagent serve`, on the real SmolLM2 GGUF), and through a dead URL."""

from __future__ import annotations

import json
from pathlib import Path

from vlagent import build_agent
from vlagent.evals.harness import run_eval
from vlagent.serving.process import free_port
from vlagent.settings import Settings


def _no_vision(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"caption_backend": "none", "vqa_backend": "none", "clip_backend": "none"}
    )


def test_server_answers_the_agents_classify_and_answer_calls(llama_server_settings, label_images) -> None:  # type: ignore[no-untyped-def]
    agent = build_agent(_no_vision(llama_server_settings))
    assert agent.parts.llm is not None and "llm" not in agent.parts.unavailable
    answer = agent.invoke("What does the label say?", images=[str(label_images["label_en.png"])])
    (classify,) = [t for t in answer.trace if t.name == "classify"]
    (answer_llm,) = [t for t in answer.trace if t.name == "answer_llm"]
    # the classifier's structured call reached the server and came back schema-valid
    assert classify.ok and answer.classifier == "llm", classify.error
    assert answer_llm.ok, answer_llm.error
    assert answer.text.strip()
    assert [t.name for t in answer.trace if t.name == "ocr" and t.ok] == ["ocr"]


def test_dead_llm_url_is_named_per_question_and_the_harness_goes_on(catalogue, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{free_port()}/v1"
    settings = _no_vision(
        Settings(
            home=tmp_path / "home", llm_backend="openai", llm_base_url=url, llm_model="m",
            request_timeout=3, max_retries=0,
        )  # fmt: skip
    )
    agent = build_agent(settings, images=[catalogue.folder], annotations=catalogue.csv)
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
    assert colour.classifier == "rules"  # the LLM is down: the rules classified
    assert any(url in err for err in colour.tool_errors), colour.tool_errors
    assert colour.text.strip()  # answered from the colour tool
    out = json.loads((tmp_path / "answers.json").read_text(encoding="utf-8"))
    assert out[1]["related_image"] == second  # title search needs no LLM
