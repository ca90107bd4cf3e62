"""The FastAPI app: ``GET /health``, ``POST /v1/answer``, OpenAI-compatible ``/v1/chat/completions``.

Optional bearer-token auth (``VLAGENT_API_TOKEN``), a request body limit
(``VLAGENT_API_MAX_REQUEST_BYTES``), a question length limit (``VLAGENT_QUESTION_MAX_CHARS``,
checked before any other work: 413), upload checks (type, size, decodable), and one JSON error
shape for every 4xx. The agent is built once per process (:class:`AgentService`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.sse import format_sse_event
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from vlagent.agent.types import Answer
from vlagent.api.errors import answer_error, install_error_handlers, status_of
from vlagent.api.schemas import AnswerRequest
from vlagent.api.service import AgentService
from vlagent.api.steps import Step
from vlagent.api.uploads import UploadFolder
from vlagent.errors import VlagentError, one_line
from vlagent.api.openai_compat import make_router

_bearer = HTTPBearer(auto_error=False, description="VLAGENT_API_TOKEN, when the server sets one")


def sse(event: str, payload: Any) -> bytes:
    return format_sse_event(data_str=json.dumps(payload, ensure_ascii=False), event=event)


def error_payload(exc: BaseException) -> dict[str, Any]:
    status, code = status_of(exc)
    return {"error": {"message": one_line(exc, 500), "type": "api_error", "code": code, "status": status}}


def create_app(service: AgentService) -> FastAPI:
    settings = service.settings
    app = FastAPI(
        title="vlagent", summary="Questions about product images (zh/en) over HTTP",
        max_body_size=settings.api_max_request_bytes,
    )  # fmt: skip
    app.state.service = service
    install_error_handlers(app)

    def require_token(creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        token = settings.api_token
        if token is None:
            return
        if creds is None or not secrets.compare_digest(creds.credentials.encode(), token.get_secret_value().encode()):
            raise HTTPException(401, "missing or wrong bearer token (Authorization: Bearer ...)",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    @app.get("/health")
    def health() -> dict[str, Any]:
        parts = service.agent.parts
        return {
            "status": "ok", "model": "vlagent", "tools": sorted(parts.tools),
            "unavailable": dict(parts.unavailable), "catalogue_images": len(service.catalogue_names()),
        }  # fmt: skip

    @app.post("/v1/answer", dependencies=[Depends(require_token)], response_model=Answer,
              responses={422: {"description": "an unreadable image, or no evidence to answer from"}})  # fmt: skip
    async def answer(request: Request) -> Any:
        """A question plus images (catalogue names in `images`, uploads in `files` of a multipart
        form). Returns the Answer, or with `stream=true` server-sent events: `step`… then
        `answer` (or `error`)."""
        req, files = await _read_answer_request(request, settings.upload_max_images)
        service.check_question(req.question)  # a 413 before any upload is written
        folder = service.uploads(req.thread_id)
        try:
            names = [str(folder.add(name, data)) for name, data in files]
            names += service.image_args(req.images, folder)
        except BaseException:
            _discard(folder, req.thread_id)
            raise
        if req.stream:
            return StreamingResponse(
                _answer_events(service, req, names, folder), media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )  # fmt: skip
        try:
            result = await run_in_threadpool(service.answer, req.question, names, req.thread_id)
        finally:
            _discard(folder, req.thread_id)
        if result.error is not None:
            return answer_error(result)
        return JSONResponse(result.model_dump(mode="json"))


    app.include_router(make_router(service), dependencies=[Depends(require_token)])
    return app


def _discard(folder: UploadFolder, thread_id: str | None) -> None:
    if thread_id is None:  # a one-off question keeps nothing; a thread keeps its uploads
        folder.remove()


def _answer_events(service: AgentService, req: AnswerRequest, names: list[str], folder: UploadFolder) -> Iterator[bytes]:
    try:
        for item in service.stream(req.question, names, req.thread_id):
            if isinstance(item, Step):
                yield sse("step", item.model_dump(mode="json"))
            elif item.error is not None:
                yield sse("error", {"error": {"message": item.error.line(), "type": "invalid_request_error",
                                              "code": item.error.kind}, "answer": item.model_dump(mode="json")})  # fmt: skip
            else:
                yield sse("answer", item.model_dump(mode="json"))
    except VlagentError as exc:
        yield sse("error", error_payload(exc))
    except Exception as exc:  # noqa: BLE001 - the stream ends with an error event, not a cut connection
        yield sse("error", {"error": {"message": one_line(exc, 500), "type": "api_error", "code": "internal"}})
    finally:
        _discard(folder, req.thread_id)


async def _read_answer_request(request: Request, max_files: int) -> tuple[AnswerRequest, list[tuple[str, bytes]]]:
    """JSON, or a multipart form with the same fields plus `files` (repeatable)."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    files: list[tuple[str, bytes]] = []
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            form = await request.form(max_files=max_files, max_fields=20)
        except HTTPException:
            raise
        except Exception as exc:  # starlette's MultiPartException: too many files/fields, bad body
            raise HTTPException(400, f"bad form: {one_line(exc)}") from None
        images = [n.strip() for v in form.getlist("images") if isinstance(v, str) for n in v.replace("，", ",").split(",")]
        data: dict[str, Any] = {
            "question": form.get("question") or "", "images": [n for n in images if n],
            "thread_id": form.get("thread_id") or None,
            "stream": str(form.get("stream", "false")).lower() in ("1", "true", "yes", "on"),
        }  # fmt: skip
        for value in form.getlist("files"):
            if isinstance(value, UploadFile):
                files.append((value.filename or "upload", await value.read()))
    elif ctype == "application/json":
        try:
            data = await request.json()
        except ValueError:
            raise HTTPException(400, "the body is not valid JSON") from None
    else:
        raise HTTPException(415, "send the question as application/json or multipart/form-data")
    try:
        return AnswerRequest.model_validate(data), files
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise HTTPException(400, f"{where}: {first['msg']}") from None
