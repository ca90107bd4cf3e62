"""The API app in-process (FastAPI's TestClient) on the scripted agent of test_agent_graph: the
step mapping, answers with no evidence as 4xx / error events, upload checks, path scrubbing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from vlagent.agent.types import QuestionType
from vlagent.api.app import create_app
from vlagent.api.service import AgentService
from vlagent.api.steps import Step
from vlagent.api.uploads import UploadError, UploadFolder, decode_data_url, safe_name
from vlagent.settings import Settings
from test_agent_graph import FakeTools, fake_llm, make_agent, scripted


def service_for(qtype: QuestionType, tmp_path: Path, **settings: object) -> AgentService:
    agent = make_agent(scripted(qtype), FakeTools().build(), llm=fake_llm("红色"))
    return AgentService(agent, Settings(home=tmp_path / "home", **settings))


def test_stream_maps_node_updates_to_steps_then_the_answer(tmp_path: Path) -> None:
    service = service_for("vqa", tmp_path)
    folder = service.uploads()
    image = folder.add("a photo.png", _png())
    items = list(service.stream("什么颜色？", [str(image)]))
    steps = [i for i in items if isinstance(i, Step)]
    # one step per tool result, as each call finishes (the round's calls run concurrently)
    assert [s.node for s in steps] == ["understand", "plan", "tools", "tools", "tools", "answer"]
    assert steps[0].title == "question type: vqa (llm, zh)"
    assert steps[1].title.startswith("calling vqa(a_photo.png)")
    assert sorted(r["name"] for s in steps[2:5] for r in s.data["results"]) == ["colors", "ocr", "vqa"]
    answer = items[-1]
    assert answer.text == "红色"
    dumped = answer.model_dump_json()
    assert str(service.upload_root) not in dumped and "a_photo.png" in dumped  # names, never server paths


def test_an_answer_without_evidence_is_a_422_naming_why(tmp_path: Path) -> None:
    client = TestClient(create_app(service_for("describe", tmp_path)))
    response = client.post("/v1/answer", json={"question": "请描述这张图片。"})
    assert response.status_code == 422
    body = response.json()
    assert "needs an image" in body["error"]["message"] and body["error"]["code"] == "image"
    assert body["answer"]["type"] == "describe"

    with client.stream("POST", "/v1/answer", json={"question": "请描述这张图片。", "stream": True}) as stream:
        lines = [line for line in stream.iter_lines() if line]
    assert lines[-2] == "event: error" and "needs an image" in json.loads(lines[-1][6:])["error"]["message"]

    response = client.post("/v1/chat/completions", json={"model": "vlagent", "messages": [{"role": "user", "content": "请描述这张图片。"}]})
    assert response.status_code == 422 and "needs an image" in response.json()["error"]["message"]
    with client.stream("POST", "/v1/chat/completions", json={"model": "vlagent", "stream": True,
                       "messages": [{"role": "user", "content": "请描述这张图片。"}]}) as stream:  # fmt: skip
        data = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: {")]
    assert "needs an image" in data[-1]["error"]["message"]


def test_no_token_configured_means_open_and_a_token_means_401(tmp_path: Path) -> None:
    open_client = TestClient(create_app(service_for("chat", tmp_path)))
    assert open_client.post("/v1/answer", json={"question": "你好"}).status_code == 200
    closed = TestClient(create_app(service_for("chat", tmp_path, api_token="t0k")))
    assert closed.post("/v1/answer", json={"question": "你好"}).status_code == 401
    assert closed.post("/v1/answer", json={"question": "你好"}, headers={"Authorization": "Bearer t0k"}).status_code == 200
    assert closed.get("/health").status_code == 200


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def test_upload_folder_checks_type_size_and_content(tmp_path: Path) -> None:
    folder = UploadFolder(tmp_path / "up", max_bytes=1000, max_pixels=10_000)
    stored = folder.add("../../etc/红 裙.PNG", _png())
    assert stored.parent == folder.root and stored.name == "红_裙.png" and folder.owns(stored)
    with pytest.raises(UploadError, match="not an accepted image type"):
        folder.add("run.sh", b"#!/bin/sh")
    with pytest.raises(UploadError, match="over the 1 KB upload limit"):
        folder.add("big.png", _png() + b"\0" * 2000)
    with pytest.raises(Exception, match="fake.jpg: not an image"):
        folder.add("fake.jpg", b"GIF89a but not really")
    assert folder.names() == ["红_裙.png"]
    assert safe_name("C:\\Users\\me\\photo 1.JPG") == "photo_1.jpg"


def test_data_urls_decode_and_other_urls_are_refused() -> None:
    suffix, data = decode_data_url("data:image/jpeg;base64," + base64.b64encode(b"abc").decode())
    assert (suffix, data) == (".jpg", b"abc")
    for bad, words in [("https://example.com/a.png", "only data: URLs"), ("file:///etc/passwd", "only data: URLs"),
                       ("data:text/plain;base64,aGk=", "only image/*")]:  # fmt: skip
        with pytest.raises(UploadError, match=words):
            decode_data_url(bad)


def test_image_names_outside_the_catalogue_and_the_session_are_refused(tmp_path: Path) -> None:
    service = service_for("vqa", tmp_path)
    mine, other = service.uploads("thread-a"), service.uploads("thread-b")
    path = other.add("secret.png", _png())
    assert service.image_args(["secret.png"], other) == [str(path)]
    for name in ("secret.png", str(path), "/etc/passwd", "../x.png"):
        with pytest.raises(Exception, match="not in the catalogue"):
            service.image_args([name], mine)


def test_the_agent_reads_uploads_and_the_catalogue_and_nothing_else(tmp_path: Path, catalogue) -> None:  # type: ignore[no-untyped-def]
    from vlagent.errors import ImageNotAllowedError
    from vlagent.models.context import ToolContext

    settings = Settings(home=tmp_path / "home")
    agent = make_agent(scripted("vqa"), FakeTools().build(), llm=fake_llm())
    agent.ctx = ToolContext.from_settings(settings, [catalogue.folder], use_cache=False)
    service = AgentService(agent, settings, [catalogue.folder])
    upload = service.uploads("a-thread").add("mine.png", _png())
    resolver = agent.ctx.resolver
    assert resolver.read_bytes(str(upload)) == _png()
    assert resolver.read_bytes("dress_red.jpg") == catalogue.path("dress_red.jpg").read_bytes()
    outside = tmp_path / "secret.png"
    outside.write_bytes(_png())
    with pytest.raises(ImageNotAllowedError):
        resolver.read_bytes(str(outside))
    with pytest.raises(ImageNotAllowedError):
        service.image_args([str(outside)], service.uploads("a-thread"))


def test_a_question_over_the_limit_is_a_413_in_every_route_before_any_work(tmp_path: Path) -> None:
    tools = FakeTools()
    agent = make_agent(scripted("vqa"), tools.build(), llm=fake_llm("红色"))
    service = AgentService(agent, Settings(home=tmp_path / "home", question_max_chars=50))
    client = TestClient(create_app(service))
    long = "这件衣服是什么颜色的？" * 5  # 55 characters
    data_url = "data:image/png;base64," + base64.b64encode(_png()).decode()
    responses = [
        client.post("/v1/answer", json={"question": long}),
        client.post("/v1/answer", json={"question": long, "stream": True}),
        client.post("/v1/answer", data={"question": long}, files={"files": ("a.png", _png(), "image/png")}),
        client.post("/v1/chat/completions", json={"model": "vlagent", "messages": [{"role": "user", "content": long}]}),
        client.post("/v1/chat/completions", json={"model": "vlagent", "stream": True, "messages": [{"role": "user", "content": [
            {"type": "text", "text": long}, {"type": "image_url", "image_url": {"url": data_url}}]}]}),  # fmt: skip
    ]
    for response in responses:
        assert response.status_code == 413, response.text
        assert response.json()["error"] == {
            "message": "the question is too long: 55 characters, at most 50 (VLAGENT_QUESTION_MAX_CHARS)",
            "type": "request_too_large", "code": "question_too_long",
        }  # fmt: skip
    assert tools.calls == [] and not list(service.upload_root.rglob("*.png"))  # nothing ran, no upload kept
    at_limit = client.post("/v1/answer", json={"question": long[:50]})  # asked: a vqa question with no image
    assert at_limit.status_code == 422 and "needs an image" in at_limit.json()["error"]["message"]
    with pytest.raises(Exception, match="at most 50"):
        agent_limit = make_agent(scripted("vqa"), FakeTools().build(), llm=fake_llm("红色"))
        agent_limit.question_max_chars = 50
        agent_limit.invoke(long)  # the agent refuses it too (agent.invoke from Python)


def test_the_ui_chat_and_search_say_a_question_is_too_long(tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    from vlagent.web.ui import do_chat, do_search
    from vlagent.web.session import WebSession

    tools = FakeTools()
    agent = make_agent(scripted("vqa"), tools.build(), llm=fake_llm("红色"))
    service = AgentService(agent, Settings(home=tmp_path / "home", question_max_chars=50))
    session = WebSession(service)
    session.pending = ["dress_red.jpg"]
    long = "这件衣服是什么颜色的？" * 20_000
    (history, _box, session, message, attached), *more = list(do_chat(service, {"text": long, "files": []}, [], session))
    assert more == [] and tools.calls == []
    assert history[-1] == {"role": "assistant", "content": "Error: the question is too long: 220,000 characters, at most 50 (VLAGENT_QUESTION_MAX_CHARS)"}
    assert history[0]["content"].endswith("… (220,000 characters)") and len(history[0]["content"]) < 300
    assert "too long" in message and session.pending == ["dress_red.jpg"] and "dress_red.jpg" in attached
    _gallery, hits, message, _session = do_search(service, long, None, 4, session)
    assert hits == [] and "the query is too long: 220,000 characters" in message
