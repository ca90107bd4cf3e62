"""The agent against REAL vLLM servers started by `vlagent serve all --engine vllm`.

Marked ``vllm`` and skipped (with the reason in the summary) unless a vLLM environment is
configured: ``VLAGENT_VLLM_PYTHON`` names its python, or vllm imports in this interpreter. So
the default run and CI stay as fast as without it. Run them with::

    VLAGENT_VLLM_PYTHON=/work/vllm-env/bin/python nice -n 10 python -m pytest -m vllm tests/test_vllm_server.py

The models are the tiny random Qwen2 and Qwen2-VL of the test fixtures, saved as ordinary model
folders, with head_dim 64 (vLLM's CPU attention refuses head_dim 8 or 16). On a 2-core CPU the two
servers are up in 1-2 minutes; the tests take a few minutes in all. What they check, through
the agent: classification through vLLM's structured output (``response_format`` json_schema)
and the one-token ``logprobs`` request; a compare question's two images in one VLM request,
with the chat template placing every image; a describe answer streamed; `vlagent doctor` on
both servers; and that stopping `vlagent serve` leaves no process behind.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from vlagent.serving.commands import probe_python
from vlagent.serving.process import free_port
from vlagent.settings import Settings

VLLM_ENV = "VLAGENT_VLLM_PYTHON"
SUITE = Path(__file__).resolve().parents[1] / "evals" / "suites" / "sample"
LLM_NAME = "tiny-qwen2"
STARTUP_S = 480.0


def _vllm_python() -> tuple[str | None, str]:
    configured = os.environ.get(VLLM_ENV)
    if configured:
        if probe_python(configured)[0]:
            return configured, ""
        return None, f"{VLLM_ENV}={configured} cannot import vllm"
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable, ""
    return None, f"no vLLM environment: set {VLLM_ENV} to the python of one (README, Deploy on GPUs) to run these"


PYTHON, WHY = _vllm_python()
pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.skipif(PYTHON is None, reason=WHY)]


# --- the servers --------------------------------------------------------------------------
@dataclass
class Served:
    proc: subprocess.Popen[str]
    home: Path
    llm_url: str
    vlm_url: str
    vlm_model: str
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = dict(
            home=self.home / "agent", llm_backend="openai", llm_base_url=self.llm_url, llm_model=LLM_NAME,
            llm_max_tokens=12, vqa_backend="openai", vqa_base_url=self.vlm_url, vqa_model=self.vlm_model,
            vqa_max_new_tokens=8, caption_backend="none", clip_backend="none", ocr_backend="none",
            request_timeout=180, max_retries=0, llm_selfcheck=False,
        )  # fmt: skip
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    def logs(self) -> str:
        out = []
        for log in sorted((self.home / "logs").glob("serve-*.log")):
            tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
            out.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(out)


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        todo += children
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _reader(stream: object, sink: queue.Queue[str]) -> None:
    for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
        sink.put(line)


@pytest.fixture(scope="module")
def tiny_vllm_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from fixtures_llm import build_tiny_causal_lm
    from fixtures_vision import build_tiny_qwen2vl

    root = tmp_path_factory.mktemp("vllm-models")
    llm = build_tiny_causal_lm(
        root / "tiny-qwen2", hidden_size=128, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=256, max_position_embeddings=4096,
    )  # fmt: skip
    vlm = build_tiny_qwen2vl(
        root / "tiny-qwen2vl", hidden_size=128, num_attention_heads=2, num_key_value_heads=1,
        mrope_section=(8, 12, 12), max_position_embeddings=4096,
    )  # fmt: skip
    return llm, vlm


@pytest.fixture(scope="module")
def served(tiny_vllm_models: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    llm_dir, vlm_dir = tiny_vllm_models
    home = tmp_path_factory.mktemp("vllm-home")
    llm_port, vlm_port = free_port(), free_port()
    env = {
        **os.environ, "VLAGENT_HOME": str(home), VLLM_ENV: str(PYTHON), "VLAGENT_LLM_MODEL": str(llm_dir),
        "VLAGENT_SERVE_LLM_NAME": LLM_NAME, "VLAGENT_VQA_MODEL": str(vlm_dir), "VLAGENT_SERVE_DTYPE": "float32",
        "VLAGENT_SERVE_MAX_MODEL_LEN": "4096", "VLAGENT_SERVE_VLLM_ARGS": "--enforce-eager",
        "VLAGENT_SERVE_STARTUP_TIMEOUT": str(STARTUP_S), "COLUMNS": "400", "HF_HUB_OFFLINE": "1",
    }  # fmt: skip
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vlagent.cli.app", "serve", "all", "--engine", "vllm",
         "--port", str(llm_port), "--vlm-port", str(vlm_port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    result = Served(
        proc=proc, home=home, llm_url=f"http://127.0.0.1:{llm_port}/v1", vlm_url=f"http://127.0.0.1:{vlm_port}/v1",
        vlm_model=str(vlm_dir), env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_S + 30
        while len([x for x in result.lines if x.startswith("export ")]) < 2:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`vlagent serve all` did not come up (exit {proc.poll()}):\n{result.logs()}")
            try:
                result.lines.append(lines.get(timeout=1.0))
            except queue.Empty:
                pass
        result.pids = _descendants(proc.pid)
        yield result
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for pid in _descendants(proc.pid) + result.pids:  # never leave a server behind, even on failure
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _requests_done(base_url: str) -> float:
    """vLLM's finished-request counter (Prometheus /metrics), summed over its labels."""
    text = httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
        if line.startswith("vllm:request_success_total")
    )  # fmt: skip


def _image_tokens(vlm_dir: str, size: tuple[int, int]) -> int:
    """How many tokens Qwen2-VL's processor turns an image of ``size`` (w, h) into, with its
    ``<|vision_start|>``/``<|vision_end|>``: what the chat template's one placeholder becomes."""
    config = json.loads((Path(vlm_dir) / "processor_config.json").read_text())["image_processor"]
    patch, merge = config.get("patch_size", 14), config.get("merge_size", 2)
    factor = patch * merge
    low = config.get("min_pixels") or config["size"]["shortest_edge"]
    high = config.get("max_pixels") or config["size"]["longest_edge"]
    width, height = size
    h, w = max(factor, round(height / factor) * factor), max(factor, round(width / factor) * factor)
    if h * w > high:
        beta = ((height * width) / high) ** 0.5
        h, w = max(factor, int(height / beta / factor) * factor), max(factor, int(width / beta / factor) * factor)
    elif h * w < low:
        beta = (low / (height * width)) ** 0.5
        h, w = int(-(-height * beta // factor)) * factor, int(-(-width * beta // factor)) * factor
    return (h // factor) * (w // factor) + 2


# --- the tests ----------------------------------------------------------------------------
def test_serve_prints_the_agent_lines(served: Served) -> None:
    from vlagent.models.health import check_server

    assert check_server(served.llm_url, timeout=10) == [LLM_NAME]
    assert check_server(served.vlm_url, timeout=10) == [served.vlm_model]
    exports = [x.strip() for x in served.lines if x.startswith("export ")]
    assert f"VLAGENT_LLM_BASE_URL={served.llm_url}" in exports[0] and f"VLAGENT_LLM_MODEL={LLM_NAME}" in exports[0]
    assert f"VLAGENT_VQA_BASE_URL={served.vlm_url}" in exports[1]
    assert served.pids, "vLLM runs as child processes of `vlagent serve`"


def test_classification_is_schema_valid_through_structured_output(served: Served) -> None:
    from vlagent.agent.cards import ORDER
    from vlagent.agent.classify import LLMDecision, build_messages, llm_vote, structured_classifier
    from vlagent.models.llm import build_chat_model

    llm = build_chat_model(served.settings(llm_max_tokens=48))
    assert llm.structured_method == "auto"  # → response_format json_schema: vLLM's guided decoding
    messages = build_messages("这款衬衫的面料是什么？", ["blue_shirt.jpg"], method="structured")
    decision = structured_classifier(llm).invoke(messages)
    assert isinstance(decision, LLMDecision) and decision.type in ORDER  # parsed and validated
    vote = llm_vote(llm, "这款衬衫的面料是什么？", ["blue_shirt.jpg"])  # the default: one token's log-probabilities
    assert vote.method == "logprobs" and abs(sum(vote.probs.values()) - 1) < 1e-6

    # the default method: one token with its top log-probabilities (vLLM reports them)
    reply = llm.bind(logprobs=True, top_logprobs=20, max_tokens=1, temperature=0).invoke(
        build_messages("请对给定的图片进行描述。", ["red_dress.jpg"], method="logprobs")
    )
    content = reply.response_metadata["logprobs"]["content"]
    assert len(content) == 1 and len(content[0]["top_logprobs"]) == 20


def test_vlm_chat_template_places_every_image(served: Served) -> None:
    from PIL import Image
    from vlagent.models.vqa import OpenAIVqa

    vqa = OpenAIVqa(served.settings())
    red, blue = Image.new("RGB", (300, 200), "red"), Image.new("RGB", (120, 160), "blue")
    counts = [vqa.answer_with_usage(images, "Which one is red?")[1]["input_tokens"] for images in ([], [red], [red, blue])]
    # one request each; every image adds exactly the tokens its placeholder expands to
    assert counts[1] - counts[0] == _image_tokens(served.vlm_model, red.size)
    assert counts[2] - counts[1] == _image_tokens(served.vlm_model, blue.size)


def test_compare_sends_both_images_in_one_vlm_request(served: Served) -> None:
    from vlagent.agent.build import build_agent

    agent = build_agent(
        served.settings(), images=[SUITE / "images"], annotations=SUITE / "train_annotation.csv", auto_index=False
    )
    before = _requests_done(served.vlm_url)
    answer = agent.invoke("比较这两件衣服，哪件是红色的？", images=["red_dress.jpg", "blue_shirt.jpg"])
    assert answer.type == "compare", answer
    vqa = [t for t in answer.trace if t.name == "vqa"]
    assert len(vqa) == 1 and vqa[0].ok, answer.trace
    assert vqa[0].args["images"] == ["red_dress.jpg", "blue_shirt.jpg"]
    output = vqa[0].output
    assert output["images"] == ["red_dress.jpg", "blue_shirt.jpg"] and output["requests"] == 1
    sizes = [tuple(s) for s in output["sizes"]]
    assert output["usage"]["input_tokens"] > sum(_image_tokens(served.vlm_model, s) for s in sizes)  # type: ignore[arg-type]
    assert _requests_done(served.vlm_url) - before == 1  # the server saw one request, not two
    assert "vqa[red_dress.jpg,blue_shirt.jpg]" in answer.evidence
    assert answer.text.strip()


def test_describe_streams_the_answer(served: Served) -> None:
    from langchain_core.messages import AIMessageChunk

    from vlagent.agent.build import build_agent

    agent = build_agent(
        served.settings(), images=[SUITE / "images"], annotations=SUITE / "train_annotation.csv", auto_index=False
    )
    chunks = [
        message for message, meta in agent.stream("Describe this product.", images=["red_dress.jpg"], stream_mode="messages")
        if meta.get("langgraph_node") == "answer" and isinstance(message, AIMessageChunk)
    ]  # fmt: skip
    texts = [str(c.content) for c in chunks if c.content]
    assert len(texts) >= 2, f"the answer came in {len(texts)} piece(s): {texts}"  # token by token (random model: any text)


def test_doctor_reports_both_servers(served: Served) -> None:
    env = {
        **served.env, "VLAGENT_HOME": str(served.home / "doctor"), "VLAGENT_LLM_BACKEND": "openai",
        "VLAGENT_LLM_BASE_URL": served.llm_url, "VLAGENT_LLM_MODEL": LLM_NAME, "VLAGENT_VQA_BACKEND": "openai",
        "VLAGENT_VQA_BASE_URL": served.vlm_url, "VLAGENT_CLIP_BACKEND": "none", "VLAGENT_CAPTION_BACKEND": "none",
        "VLAGENT_OCR_BACKEND": "none",
    }  # fmt: skip
    env.pop("VLAGENT_SERVE_LLM_NAME", None)
    done = subprocess.run(
        [sys.executable, "-m", "vlagent.cli.app", "doctor", "--json", "--timeout", "180"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    checks = {c["role"]: c for c in json.loads(done.stdout)}
    assert done.returncode == 0, done.stdout + done.stderr
    for role in ("llm", "vqa"):
        assert checks[role]["backend"] == "openai" and checks[role]["ran"] and checks[role]["ok"], checks[role]
    assert served.llm_url in checks["llm"]["where"] and served.vlm_url in checks["vqa"]["where"]


def test_stopping_serve_leaves_no_process_behind(served: Served) -> None:
    from vlagent.errors import BackendUnavailableError
    from vlagent.models.health import check_server

    pids = sorted(set(served.pids + _descendants(served.proc.pid)))
    assert pids
    served.proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = served.proc.communicate(timeout=120)
    assert served.proc.returncode == 0, err
    assert "stopped" in err
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [p for p in pids if _alive(p)], "processes left behind"
    for url in (served.llm_url, served.vlm_url):
        with pytest.raises(BackendUnavailableError):
            check_server(url, timeout=2)
