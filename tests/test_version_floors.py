"""The declared minimum versions (pyproject.toml) against the APIs the code calls.

Each floor is tied to what needs it, and the code is asked whether it still uses that: a floor
below what the code needs fails here. ``.ci/floors`` installs the floor versions themselves
(transformers 4.56 with its huggingface_hub < 1.0) and runs the model tests on them.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from vlagent.models import hub
from vlagent.models.placement import Placement
from vlagent.serving.commands import vllm_command
from vlagent.settings import Settings

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _floors() -> dict[str, Version]:
    """Every requirement's ``>=`` floor, from the dependencies and every extra."""
    project = tomllib.loads(PYPROJECT.read_text("utf-8"))["project"]
    lines = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    floors: dict[str, Version] = {}
    for line in lines:
        req = Requirement(line)
        for spec in req.specifier:
            if spec.operator == ">=":
                floors[req.name.lower()] = Version(spec.version)
    return floors


def test_transformers_floor_has_the_dtype_keyword() -> None:
    """``from_pretrained(dtype=...)`` is transformers >= 4.56 (before: ``torch_dtype=``, and
    ``dtype`` went to the model's config silently: a float32 load on a GPU)."""
    assert "dtype" in Placement("cpu", "float32").load_kwargs()  # what every loader passes
    assert _floors()["transformers"] >= Version("4.56")


def test_vllm_floor_has_the_flags_serve_passes(tmp_path: Path) -> None:
    """The JSON form of ``--limit-mm-per-prompt`` and ``--structured-outputs-config`` are
    vLLM >= 0.11 (older releases refuse the command line)."""
    s = Settings(home=tmp_path)
    llm, vlm = vllm_command(s, "llm", use_module=False).argv, vllm_command(s, "vlm", use_module=False).argv
    assert "--structured-outputs-config" in llm
    assert vlm[vlm.index("--limit-mm-per-prompt") + 1].startswith("{")
    assert _floors()["vllm"] >= Version("0.11")


class _Hub(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:  # noqa: N802 - the http.server name
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def local_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from huggingface_hub import constants

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the tests' conftest sets it
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    hub.forget()
    try:
        yield url
    finally:
        hub.forget()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("session", ["installed", "requests"])
def test_a_reachable_hub_is_reachable_with_either_http_session(
    session: str, local_hub: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 5: huggingface_hub >= 1.0 hands out an httpx client, older releases (those
    transformers 4.x installs) a ``requests.Session``. The reachability check passed httpx's
    ``follow_redirects``: a TypeError under requests, remembered as "hub unreachable"."""
    if session == "requests":
        import huggingface_hub
        import requests

        monkeypatch.setattr(huggingface_hub, "get_session", requests.Session)
    assert hub.hub_unreachable(timeout=5) is None
