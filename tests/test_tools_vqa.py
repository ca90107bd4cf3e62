"""VQA: the in-process transformers path on a tiny Qwen2-VL; the OpenAI path on a real server."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from fixtures_llm import LLAMA_SERVER_MODEL
from PIL import Image
from pydantic import ValidationError

from vlagent.errors import BackendUnavailableError
from vlagent.models import vqa
from vlagent.models.vqa import data_url
from vlagent.tools.vqa import make_vqa_tool


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("vqa-images")
    big, small = out / "big.jpg", out / "small.png"
    Image.new("RGB", (1600, 900), (200, 20, 30)).save(big)
    Image.new("RGB", (120, 160), (20, 30, 200)).save(small)
    return {"big": str(big), "small": str(small)}


def call(tool, images: list[str], question: str):  # type: ignore[no-untyped-def]
    return tool.invoke({"type": "tool_call", "name": "vqa", "args": {"images": images, "question": question}, "id": "v1"})


def qwen_ctx(vision_ctx, model_dir: Path):  # type: ignore[no-untyped-def]
    return vision_ctx(vqa_model=str(model_dir), vqa_max_new_tokens=6, vqa_max_image_side=256)


def test_transformers_backend_two_images_resized(vision_ctx, tiny_qwen2vl_dir: Path, images: dict[str, str]) -> None:
    ctx = qwen_ctx(vision_ctx, tiny_qwen2vl_dir)
    assert vqa.resolve_backend(ctx.settings) == "transformers" and vqa.probe(ctx.settings) is None
    tool = make_vqa_tool(ctx)
    msg = call(tool, [images["big"], images["small"]], "这两件衣服有什么不同？")
    art = msg.artifact
    assert isinstance(msg.content, str) and msg.content
    assert art["backend"] == "transformers" and art["model"] == str(tiny_qwen2vl_dir)
    assert art["images"] == [images["big"], images["small"]]
    assert art["sizes"] == [[256, 144], [120, 160]]  # the big one shrunk (aspect kept), the small one untouched
    engine = vqa.engine(ctx.settings)
    assert [list(s) for s in engine.last_sizes] == art["sizes"]
    calls = engine.calls
    again = call(tool, [images["big"], images["small"]], "这两件衣服有什么不同？")
    assert again.artifact == art and engine.calls == calls  # cached
    call(tool, [images["small"], images["big"]], "这两件衣服有什么不同？")  # order matters: new work
    assert engine.calls == calls + 1


def test_single_image_and_english_question(vision_ctx, tiny_qwen2vl_dir: Path, images: dict[str, str]) -> None:
    msg = call(make_vqa_tool(qwen_ctx(vision_ctx, tiny_qwen2vl_dir)), [images["small"]], "What colour is it?")
    assert isinstance(msg.content, str) and msg.artifact["sizes"] == [[120, 160]]


def test_arguments_are_validated(vision_ctx, tiny_qwen2vl_dir: Path) -> None:
    tool = make_vqa_tool(qwen_ctx(vision_ctx, tiny_qwen2vl_dir))
    assert set(tool.args) == {"images", "question"}
    with pytest.raises(ValidationError):
        tool.invoke({"images": [], "question": "what?"})
    with pytest.raises(ValidationError):
        tool.invoke({"images": ["a.jpg"], "question": ""})


def test_openai_server_that_cannot_take_images_is_a_clear_error(
    vision_ctx, llama_server: str, images: dict[str, str]
) -> None:
    # SmolLM2 behind llama.cpp's server is text-only: its chat template fails on image parts (500)
    ctx = vision_ctx(vqa_base_url=llama_server, vqa_model=LLAMA_SERVER_MODEL, request_timeout=60, max_retries=0)
    assert vqa.resolve_backend(ctx.settings) == "openai" and vqa.probe(ctx.settings) is None
    with pytest.raises(BackendUnavailableError) as err:
        call(make_vqa_tool(ctx), [images["small"]], "What colour is it?")
    message = str(err.value)
    assert llama_server in message and "\n" not in message
    assert "vision-language model" in message  # says why: the server refused the image request
    assert ctx.cache is not None and len(ctx.cache) == 0  # failures are not cached


def test_dead_server_is_a_quick_clear_error(vision_ctx, images: dict[str, str]) -> None:
    from vlagent.serving.process import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    ctx = vision_ctx(vqa_backend="openai", vqa_base_url=url, request_timeout=2, max_retries=0)
    with pytest.raises(BackendUnavailableError, match="unreachable") as err:
        call(make_vqa_tool(ctx), [images["small"]], "What colour is it?")
    assert url in str(err.value) and "VLAGENT_VQA_BASE_URL" in str(err.value)


def test_probe_reasons(vision_ctx, tmp_path: Path) -> None:
    assert "VLAGENT_VQA_BACKEND=none" in (vqa.probe(vision_ctx(vqa_backend="none").settings) or "")
    assert "VLAGENT_VQA_BASE_URL" in (vqa.probe(vision_ctx(vqa_backend="openai").settings) or "")
    missing = vqa.probe(vision_ctx(vqa_backend="transformers", vqa_model=str(tmp_path / "nope")).settings)
    assert missing and "VLAGENT_VQA_MODEL" in missing
    assert "not in the HF cache" in (vqa.probe(vision_ctx(vqa_backend="auto").settings) or "")  # default hub id, offline


def test_data_url_is_a_jpeg() -> None:
    url = data_url(Image.new("RGB", (10, 10), (1, 2, 3)))
    assert url.startswith("data:image/jpeg;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).format == "JPEG"


def test_a_server_gets_at_most_its_image_limit_per_request(vision_ctx, images: dict[str, str]) -> None:
    """Finding 8: a question may attach up to MAX_IMAGES (8) images, vLLM takes
    serve_vlm_max_images (4) a prompt and answers more with HTTP 400. The tool splits the images
    into requests of at most that many; the answer names each group's images."""
    from fake_servers import VLM_TEXT, FakeOpenAIServer

    names = [images["small"], images["big"]] * 3  # 6 images
    with FakeOpenAIServer(max_images=4) as server:
        ctx = vision_ctx(vqa_backend="openai", vqa_base_url=server.url, serve_vlm_max_images=4, max_retries=0)
        msg = call(make_vqa_tool(ctx), names, "Which of these is blue?")  # before: one request, HTTP 400
        sent = [sum(p.get("type") == "image_url" for p in body["messages"][-1]["content"]) for _, body in server.requests]
    assert sent == [4, 2]
    art = msg.artifact
    assert art["requests"] == 2 and art["groups"] == [names[:4], names[4:]]
    shown = [Path(n).name for n in names]  # base names in the text the LLM reads, never paths
    assert msg.content == f"[{', '.join(shown[:4])}] {VLM_TEXT}\n[{', '.join(shown[4:])}] {VLM_TEXT}"
    assert art["usage"]["input_tokens"] == 2  # summed over the two requests (the fake counts 1 each)


def test_within_the_limit_all_images_go_in_one_request(vision_ctx, images: dict[str, str]) -> None:
    from fake_servers import VLM_TEXT, FakeOpenAIServer

    with FakeOpenAIServer(max_images=4) as server:
        ctx = vision_ctx(vqa_backend="openai", vqa_base_url=server.url, serve_vlm_max_images=4, max_retries=0)
        msg = call(make_vqa_tool(ctx), [images["small"], images["big"]], "Which is blue?")
    assert len(server.requests) == 1 and msg.content == VLM_TEXT and msg.artifact["requests"] == 1
    assert "groups" not in msg.artifact
