"""`langgraph dev` (langgraph-cli, in-memory server) serves the graph named in langgraph.json:
a thread with two turns through langgraph-sdk, the second using the first turn's image."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from vlagent.serving.process import free_port
from web_helpers import server_process, tiny_agent_env

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    shutil.which("langgraph", path=str(Path(sys.executable).parent)) is None,
    reason="langgraph-cli is not installed (pip install -e '.[web]')",
)


@pytest.fixture(scope="module")
def langgraph_url(catalogue, tiny_clip, tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("langgraph")
    port = free_port()
    env = tiny_agent_env(
        tmp / "home", tiny_clip["chinese_clip"][0],
        VLAGENT_CATALOGUE=f'["{catalogue.folder}"]', VLAGENT_ANNOTATIONS=str(catalogue.csv),
        LANGGRAPH_CLI_NO_ANALYTICS="1", LANGSMITH_TRACING="false", LANGCHAIN_TRACING_V2="false",
    )  # fmt: skip
    cmd = [
        str(Path(sys.executable).parent / "langgraph"), "dev", "--config", str(REPO / "langgraph.json"),
        "--host", "127.0.0.1", "--port", str(port), "--no-browser", "--no-reload", "--allow-blocking",
    ]  # fmt: skip
    with server_process(cmd, env, f"http://127.0.0.1:{port}/ok", tmp / "langgraph.log", cwd=tmp):
        yield f"http://127.0.0.1:{port}"


def test_a_thread_with_two_turns_keeps_the_image(langgraph_url: str) -> None:
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=langgraph_url)
    thread = client.threads.create()
    first = client.runs.wait(
        thread["thread_id"], "vlagent", input={"question": "这件衣服是什么颜色的？", "images": ["dress_red.jpg"]}
    )
    assert first["intent"]["type"] == "vqa" and first["evidence"][0] == "colors[dress_red.jpg]"
    assert first["answer"].strip()

    updates = [
        part.data for part in client.runs.stream(
            thread["thread_id"], "vlagent", input={"question": "那它是什么颜色的？"}, stream_mode="updates",
        )
        if part.event == "updates"
    ]  # fmt: skip
    nodes = [next(iter(u)) for u in updates]
    assert nodes[:3] == ["start", "understand", "plan"] and nodes[-1] == "answer"
    state = client.threads.get_state(thread["thread_id"])["values"]
    assert state["turn_images"] == ["dress_red.jpg"]  # the first turn's image, from the server's checkpointer
    assert [h["question"] for h in state["history"]] == ["这件衣服是什么颜色的？", "那它是什么颜色的？"]
    assert "colors[dress_red.jpg]" in state["evidence"]
