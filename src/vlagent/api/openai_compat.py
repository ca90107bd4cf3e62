"""OpenAI-compatible ``POST /v1/chat/completions`` (model ``vlagent``) and ``GET /v1/models``.

The last user message is the question; its ``image_url`` parts (data URLs) are the images, or,
when it has none, those of the latest earlier user message that had some — so a follow-up
("what colour is it?") refers to the image of the turn before, as OpenAI clients resend the
whole conversation. Streaming sends the agent's steps as ``reasoning_content`` deltas, then the
answer as ``content``. The response carries the full Answer (type, trace, images) under ``vlagent``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from starlette.exceptions import HTTPException

from vlagent.agent.types import Answer
from vlagent.api.errors import answer_error
from vlagent.api.schemas import MODEL_NAME, ChatRequest
from vlagent.api.service import AgentService
from vlagent.api.steps import Step
from vlagent.api.uploads import UploadError, UploadFolder, decode_data_url
from vlagent.errors import VlagentError, one_line


def question_and_images(req: ChatRequest) -> tuple[str, list[str]]:
    users = [m for m in req.messages if m.role == "user"]
    if not users:
        raise HTTPException(400, "messages: no user message")
    question = users[-1].text().strip()
    if not question:
        raise HTTPException(400, "messages: the last user message has no text")
    urls = next((m.image_urls() for m in reversed(users) if m.image_urls()), [])
    return question, urls


def _completion(answer: Answer, cid: str, created: int) -> dict[str, Any]:
    body = ChatCompletion.model_validate({
        "id": cid, "object": "chat.completion", "created": created, "model": MODEL_NAME,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer.text}}],
    }).model_dump(mode="json", exclude_none=True)  # fmt: skip
    body["vlagent"] = answer.model_dump(mode="json", exclude={"text"})
    return body


def _chunk(cid: str, created: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    chunk = ChatCompletionChunk.model_validate({
        "id": cid, "object": "chat.completion.chunk", "created": created, "model": MODEL_NAME,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }).model_dump(mode="json", exclude_none=True)  # fmt: skip
    chunk.update(extra)
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()


def _events(service: AgentService, question: str, images: list[str], folder: UploadFolder, cid: str) -> Iterator[bytes]:
    created = int(time.time())
    yield _chunk(cid, created, {"role": "assistant", "content": ""})
    try:
        for item in service.stream(question, images):
            if isinstance(item, Step):
                yield _chunk(cid, created, {"reasoning_content": item.title + "\n"}, step=item.model_dump(mode="json"))
            elif item.error is not None:
                err = {"message": item.error.line(), "type": "invalid_request_error", "code": item.error.kind}
                yield f"data: {json.dumps({'error': err}, ensure_ascii=False)}\n\n".encode()
                return
            else:
                yield _chunk(cid, created, {"content": item.text})
                yield _chunk(cid, created, {}, "stop", vlagent=item.model_dump(mode="json", exclude={"text"}))
    except Exception as exc:  # noqa: BLE001 - an error event, not a cut connection
        err = {"message": one_line(exc, 500), "type": "api_error", "code": "internal"}
        yield f"data: {json.dumps({'error': err}, ensure_ascii=False)}\n\n".encode()
        return
    finally:
        folder.remove()
    yield b"data: [DONE]\n\n"


def make_router(service: AgentService) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL_NAME, "object": "model", "created": 0, "owned_by": "vlagent"}]}

    @router.post("/v1/chat/completions")
    async def chat_completions(req: ChatRequest) -> Any:
        """OpenAI chat completions: text and image_url parts (data URLs), streaming or not."""
        if req.model != MODEL_NAME:
            raise HTTPException(404, f"model {req.model!r} not found: this server serves {MODEL_NAME!r}")
        question, urls = question_and_images(req)
        service.check_question(question)  # a 413 before any image is decoded
        if len(urls) > service.settings.upload_max_images:
            raise UploadError(f"{len(urls)} images: at most {service.settings.upload_max_images} per question")
        folder = service.uploads()
        try:
            images = []
            for n, url in enumerate(urls, 1):
                suffix, data = decode_data_url(url)
                images.append(str(folder.add(f"image-{n}{suffix}", data)))
        except VlagentError:
            folder.remove()
            raise
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if req.stream:
            return StreamingResponse(_events(service, question, images, folder, cid), media_type="text/event-stream")
        try:
            answer = await run_in_threadpool(service.answer, question, images)
        finally:
            folder.remove()
        if answer.error is not None:
            return answer_error(answer)
        return JSONResponse(_completion(answer, cid, int(time.time())))

    return router
