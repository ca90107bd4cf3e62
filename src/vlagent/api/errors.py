"""One JSON shape for every API error, ``{"error": {"message", "type", "code"}}``, and the
status each kind of problem gets."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from vlagent.agent.types import Answer
from vlagent.api.schemas import ErrorBody, ErrorDetail
from vlagent.api.uploads import UploadTooLargeError
from vlagent.errors import BackendUnavailableError, ImageError, ImageNotAllowedError, QuestionTooLongError, VlagentError, one_line

ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 415: "invalid_request_error",
    422: "invalid_request_error", 503: "service_unavailable",
}  # fmt: skip


def error_response(status: int, message: str, code: str | None = None, answer: Answer | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    body = ErrorBody(
        error=ErrorDetail(message=message, type=ERROR_TYPES.get(status, "api_error"), code=code),
        answer=answer.model_dump(mode="json") if answer is not None else None,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def status_of(exc: BaseException) -> tuple[int, str]:
    """(HTTP status, error code) for an exception raised while handling a request."""
    if isinstance(exc, UploadTooLargeError):
        return 413, "upload_too_large"
    if isinstance(exc, QuestionTooLongError):
        return 413, "question_too_long"
    if isinstance(exc, ImageNotAllowedError):
        return 403, "image_not_allowed"
    if isinstance(exc, ImageError):
        return 422, "bad_image"
    if isinstance(exc, BackendUnavailableError):
        return 503, "backend_unavailable"
    return 400, "bad_request"


def answer_error(answer: Answer) -> JSONResponse:
    """An answer with no evidence behind it: a 422 naming the image and the reason."""
    assert answer.error is not None
    return error_response(422, answer.error.line(), code=answer.error.kind, answer=answer)


def _validation_line(exc: RequestValidationError) -> str:
    errors: list[dict[str, Any]] = list(exc.errors())
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where or 'body'}: {first.get('msg', 'invalid')}{more}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, _validation_line(exc), code="invalid_request")

    @app.exception_handler(VlagentError)
    async def user_error(request: Request, exc: VlagentError) -> JSONResponse:
        status, code = status_of(exc)
        return error_response(status, one_line(exc, 500), code=code)
