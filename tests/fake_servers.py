"""A fake OpenAI-compatible server (LLM or VLM) on 127.0.0.1 in a thread, for fault tests.

``mode`` decides every reply (switch it between runs):

* ``ok``: classification requests (they carry ``tools``, ``response_format`` or ``logprobs``) get
  the learned classifier's decision for the question (valid, deterministic): a named tool call,
  JSON content, or the type as the one token with its ``top_logprobs``; answer requests get
  ``ANSWER_TEXT``; VLM requests (an ``image_url`` part) get ``VLM_TEXT``;
* ``slow``: sleeps ``delay`` seconds, then answers as ``ok`` (beyond the client's timeout);
* ``garbage``: HTTP 200 with an HTML body (not JSON at all);
* ``invalid_json``: a well-formed envelope whose content and tool-call arguments are not JSON;
* ``error``: HTTP 500 with an OpenAI-style error body.

``max_images``: like vLLM's ``--limit-mm-per-prompt``, a request with more images is refused
with vLLM's HTTP 400.

``requests`` records ``(kind, body)`` per request: kind is ``classify``, ``answer`` or ``vqa``.

``die_after=N``: the server dies after answering N requests, as a killed process does: the next
request's connection is closed without a reply, and the port stops listening (connections are
refused). ``port`` binds a given port (start a new server where a dead one was).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER_TEXT = "LLM-ANSWER"
VLM_TEXT = "VLM-ANSWER"


def _kind(body: dict[str, Any]) -> str:
    if body.get("tools") or body.get("response_format") or body.get("logprobs"):
        return "classify"
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list) and any(part.get("type") == "image_url" for part in content):
            return "vqa"
    return "answer"


def _images(body: dict[str, Any]) -> int:
    """The image parts of a chat request."""
    return sum(
        1
        for message in body.get("messages", [])
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part.get("type") == "image_url"
    )


def _decision(body: dict[str, Any]) -> dict[str, Any]:
    """The learned classifier's decision for the question in a classify request."""
    from vlagent.agent.understand import Understander

    text = str(body["messages"][-1].get("content", ""))
    match = re.search(r"Q: (.*) images: (.*)$", text, re.S)
    question, names = (match.group(1), match.group(2)) if match else (text, "none")  # see question_of
    images = [] if names.strip() == "none" else [n.strip() for n in names.split(",")]
    c = Understander()(question, images, None).classification
    return {"type": c.type, "query": c.query}


def question_of(body: dict[str, Any]) -> str:
    """The question a classify request is about."""
    text = str(body["messages"][-1].get("content", ""))
    match = re.search(r"Q: (.*) images: (.*)$", text, re.S)
    return match.group(1) if match else text


class FakeOpenAIServer:
    def __init__(
        self, mode: str = "ok", delay: float = 3.0, max_images: int | None = None, *, die_after: int | None = None, port: int = 0
    ) -> None:
        self.mode = mode
        self.delay = delay
        self.max_images = max_images
        self.die_after = die_after
        self.dead = False
        self._stopped = False
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # /v1/models
                self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                kind = _kind(body)
                with server._lock:
                    dies = server.dead or (server.die_after is not None and len(server.requests) >= server.die_after)
                    if not dies:
                        server.requests.append((kind, body))
                    elif not server.dead:
                        server.dead = True
                        threading.Thread(target=server.stop, daemon=True).start()
                if dies:  # killed: no reply, the connection just closes
                    self.close_connection = True
                    return
                mode = server.mode
                if mode == "slow":
                    time.sleep(server.delay)
                    mode = "ok"
                if server.max_images is not None and _images(body) > server.max_images:
                    message = f"At most {server.max_images} image(s) may be provided in one prompt."
                    self._send(400, {"error": {"message": message, "type": "BadRequestError", "code": 400}})
                elif mode == "garbage":
                    self._raw(200, b"<html><body>502 Bad Gateway... or something</body></html>", "text/html")
                elif mode == "error":
                    self._send(500, {"error": {"message": "the fake server broke", "type": "server_error"}})
                else:
                    self._send(200, server.reply(kind, body, broken=mode == "invalid_json"))

            def _send(self, status: int, obj: Any) -> None:
                self._raw(status, json.dumps(obj).encode(), "application/json")

            def _raw(self, status: int, data: bytes, ctype: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def kinds(self) -> list[str]:
        with self._lock:
            return [k for k, _ in self.requests]

    def questions(self) -> list[str]:
        """The questions of the classify requests answered, in order."""
        with self._lock:
            return [question_of(body) for kind, body in self.requests if kind == "classify"]

    def reply(self, kind: str, body: dict[str, Any], broken: bool = False) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": None}
        logprobs = None
        if kind == "classify" and body.get("logprobs"):
            token = "{not json" if broken else _decision(body)["type"]
            message["content"] = token
            alternatives = [{"token": token, "logprob": -0.1}, {"token": "The", "logprob": -3.0}]
            logprobs = {"content": [{"token": token, "logprob": -0.1, "top_logprobs": alternatives}]}
        elif kind == "classify" and body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            args = "{not json" if broken else json.dumps(_decision(body))
            message["tool_calls"] = [
                {"id": "call-1", "type": "function", "function": {"name": name, "arguments": args}}
            ]
        elif kind == "classify":
            message["content"] = "{not json" if broken else json.dumps(_decision(body))
        else:
            message["content"] = "{not json" if broken else (VLM_TEXT if kind == "vqa" else ANSWER_TEXT)
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        return {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": "fake",
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": logprobs}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }  # fmt: skip

    def start(self) -> "FakeOpenAIServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            stopped, self._stopped = self._stopped, True
        if not stopped:
            self.httpd.shutdown()
            self.httpd.server_close()

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
