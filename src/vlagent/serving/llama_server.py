"""``python -m vlagent.serving.llama_server``: llama.cpp's own server on a GGUF, in its own process.

What ``vlagent serve llm --engine llama-cpp`` starts (:func:`vlagent.serving.commands.llama_cpp_command`).
It is the in-process engine (:class:`vlagent.models.llama_engine.LlamaEngine`, xllamacpp) listening
on ``--host``/``--port``: the OpenAI chat API (``/v1/chat/completions``, ``/v1/models``), continuous
batching over ``--parallel`` slots, a prompt cache per slot. It runs until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from vlagent.errors import VlagentError
from vlagent.models.llama_engine import EngineConfig, LlamaEngine


def parse_args(argv: list[str] | None = None) -> EngineConfig:
    parser = argparse.ArgumentParser(
        prog="python -m vlagent.serving.llama_server",
        description="Serve a GGUF model with llama.cpp's server (xllamacpp), OpenAI-compatible.",
    )
    parser.add_argument("--model", required=True, type=Path, help="the GGUF file")
    parser.add_argument("--alias", help="the served model name (default: the file's name)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--n-ctx", type=int, default=4096, help="context tokens per slot")
    parser.add_argument("--parallel", type=int, default=2, help="requests decoded together (slots)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument("--chat-template", default=None, help="llama.cpp template name or Jinja text")
    parser.add_argument("--api-key", default=os.environ.get("VLAGENT_SERVE_API_KEY"), help="required from clients")
    parser.add_argument("--verbosity", type=int, default=3, help="llama.cpp log level (3 info, 1 errors)")
    args = parser.parse_args(argv)
    return EngineConfig(
        model=args.model, alias=args.alias or args.model.name, host=args.host, port=args.port,
        n_ctx=args.n_ctx, n_parallel=args.parallel, n_threads=args.threads,
        chat_template=args.chat_template, api_key=args.api_key, verbosity=args.verbosity,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        engine = LlamaEngine(config)
    except VlagentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"serving {config.alias} at {engine.base_url} ({config.n_parallel} slots)", flush=True)
    stop.wait()
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
