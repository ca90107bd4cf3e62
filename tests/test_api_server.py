"""`vlagent serve api` as a real uvicorn process on 127.0.0.1 with the tiny test models: the
official openai client (streaming and not), /v1/answer (JSON, uploads, SSE, threads), and the
4xx answers for unauthorised, oversized and bad requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from vlagent.serving.process import free_port
from web_helpers import data_url, server_process, tiny_agent_env, vlagent_cmd

TOKEN = "s3cret-token"
MAX_REQUEST = 600_000


@pytest.fixture(scope="module")
def api(catalogue, tiny_clip, tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("api")
    port = free_port()
    env = tiny_agent_env(
        tmp / "home", tiny_clip["chinese_clip"][0],
        VLAGENT_API_TOKEN=TOKEN, VLAGENT_API_MAX_REQUEST_BYTES=str(MAX_REQUEST), VLAGENT_UPLOAD_MAX_BYTES="200000",
    )  # fmt: skip
    cmd = vlagent_cmd("serve", "api", "--images", str(catalogue.folder), "-a", str(catalogue.csv), "--port", str(port))
    with server_process(cmd, env, f"http://127.0.0.1:{port}/health", tmp / "api.log"):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture()
def client(api: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{api}/v1", api_key=TOKEN, max_retries=0, timeout=60)


def _image_message(path: Path, text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": data_url(path)}}]}


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_health_answers_without_a_token(api: str) -> None:
    body = httpx.get(f"{api}/health").json()
    assert body["status"] == "ok" and body["catalogue_images"] == 12
    assert "colors" in body["tools"] and "clip_search" in body["tools"]


def test_openai_client_sends_an_image_as_a_data_url(client: openai.OpenAI, catalogue) -> None:  # type: ignore[no-untyped-def]
    reply = client.chat.completions.create(
        model="vlagent", messages=[_image_message(catalogue.path("dress_red.jpg"), "这件衣服是什么颜色的？")]
    )
    assert reply.model == "vlagent" and reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content.strip()
    extra = reply.model_extra["vlagent"]
    (colors,) = [t for t in extra["trace"] if t["name"] == "colors"]
    assert colors["ok"] and colors["args"]["image"] == "image-1.jpg"  # a name, never the server's path
    assert extra["evidence"] == ["colors[image-1.jpg]"]


def test_openai_client_streams_the_steps_then_the_answer(client: openai.OpenAI, catalogue) -> None:  # type: ignore[no-untyped-def]
    stream = client.chat.completions.create(
        model="vlagent", stream=True,
        messages=[_image_message(catalogue.path("shirt_blue.jpg"), "What colour is this shirt?")],
    )  # fmt: skip
    chunks = list(stream)
    steps = [c.choices[0].delta.model_extra.get("reasoning_content") for c in chunks]
    steps = [s for s in steps if s]
    assert steps[0].startswith("question type: vqa") and any(s.startswith("calling colors") for s in steps)
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert content.strip()
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_follow_up_uses_the_first_turns_image(client: openai.OpenAI, catalogue) -> None:  # type: ignore[no-untyped-def]
    messages = [
        _image_message(catalogue.path("hat_green.png"), "请描述这张图片。"),
        {"role": "assistant", "content": "一顶帽子。"},
        {"role": "user", "content": "那它是什么颜色的？"},
    ]
    reply = client.chat.completions.create(model="vlagent", messages=messages)
    (colors,) = [t for t in reply.model_extra["vlagent"]["trace"] if t["name"] == "colors"]
    assert colors["args"]["image"] == "image-1.png"


def test_unauthorised_requests_get_401(api: str, catalogue) -> None:  # type: ignore[no-untyped-def]
    for key in ("wrong", ""):
        bad = openai.OpenAI(base_url=f"{api}/v1", api_key=key or "x", max_retries=0)
        with pytest.raises(openai.AuthenticationError, match="bearer token"):
            bad.chat.completions.create(model="vlagent", messages=[{"role": "user", "content": "你好"}])
    response = httpx.post(f"{api}/v1/answer", json={"question": "你好"})
    assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"


def test_oversized_requests_get_413(api: str, client: openai.OpenAI) -> None:
    big = "data:image/png;base64," + "A" * (MAX_REQUEST + 1000)
    response = httpx.post(
        f"{api}/v1/chat/completions", headers=_auth(),
        json={"model": "vlagent", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": big}}]}]},
    )  # fmt: skip
    assert response.status_code == 413
    # under the request limit but over the per-image upload limit
    bigger_than_upload = b"\x89PNG" + b"\0" * 300_000
    response = httpx.post(f"{api}/v1/answer", headers=_auth(), data={"question": "what is it?"},
                          files={"files": ("huge.png", bigger_than_upload, "image/png")})  # fmt: skip
    assert response.status_code == 413 and "upload limit" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, 404, "not found"),
        ({"model": "vlagent", "messages": []}, 400, "messages"),
        ({"model": "vlagent", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://example.com/a.jpg"}}, {"type": "text", "text": "hi"}]}]}, 422, "only data: URLs"),
        ({"model": "vlagent", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}}, {"type": "text", "text": "hi"}]}]}, 422, "not an image, or a corrupt one"),
    ],
)
def test_bad_chat_requests_get_a_clear_4xx(api: str, body: dict[str, Any], status: int, words: str) -> None:
    response = httpx.post(f"{api}/v1/chat/completions", headers=_auth(), json=body)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]


def test_answer_route_takes_catalogue_names_uploads_and_threads(api: str, catalogue) -> None:  # type: ignore[no-untyped-def]
    by_name = httpx.post(f"{api}/v1/answer", headers=_auth(), json={"question": "这件衣服是什么颜色的？", "images": ["bag_brown.jpg"]}, timeout=60)
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["type"] == "vqa" and by_name.json()["evidence"] == ["colors[bag_brown.jpg]", "title[bag_brown.jpg]"]

    first = httpx.post(
        f"{api}/v1/answer", headers=_auth(), data={"question": "这件衣服是什么颜色的？", "thread_id": "t-1"},
        files={"files": ("my scarf.jpg", catalogue.path("scarf_pink.jpg").read_bytes(), "image/jpeg")}, timeout=60,
    )  # fmt: skip
    assert first.status_code == 200, first.text
    second = httpx.post(f"{api}/v1/answer", headers=_auth(), json={"question": "那它是什么颜色的？", "thread_id": "t-1"}, timeout=60)
    assert second.json()["evidence"] == ["colors[my_scarf.jpg]"]


def test_answer_route_streams_server_sent_events(api: str) -> None:
    events = []
    with httpx.stream("POST", f"{api}/v1/answer", headers=_auth(), timeout=60,
                      json={"question": "请匹配到与 红色连衣裙女夏季长裙 最相关的图片。", "stream": True}) as response:  # fmt: skip
        assert response.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
    names = [e for e, _ in events]
    assert names[0] == "step" and names[-1] == "answer"
    assert [d["node"] for e, d in events if e == "step"][:2] == ["understand", "plan"]
    answer = events[-1][1]
    assert answer["type"] == "retrieve" and len(answer["images"]) == 10


@pytest.mark.parametrize(
    ("kwargs", "status", "words"),
    [
        ({"json": {"question": "这是什么？", "images": ["/etc/passwd"]}}, 403, "not in the catalogue"),
        ({"json": {"question": "", "images": []}}, 400, "question"),
        ({"json": {"question": "hi", "colour": "red"}}, 400, "colour"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "application/json"),
        ({"data": {"question": "what is it?"}, "files": {"files": ("notes.txt", b"hello", "text/plain")}}, 422, "not an accepted image type"),
        ({"data": {"question": "what is it?"}, "files": {"files": ("broken.jpg", b"\xff\xd8\xff\xe0garbage", "image/jpeg")}}, 422, "broken.jpg"),
    ],
)
def test_bad_answer_requests_get_a_clear_4xx(api: str, kwargs: dict[str, Any], status: int, words: str) -> None:
    headers = {**_auth(), **kwargs.pop("headers", {})}
    response = httpx.post(f"{api}/v1/answer", headers=headers, timeout=30, **kwargs)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]
