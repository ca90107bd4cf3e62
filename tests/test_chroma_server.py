"""VLAGENT_CHROMA_URL switches the index to a real `chroma run` server on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from vlagent.data.images import open_source
from vlagent.errors import BackendUnavailableError
from vlagent.index.build import index_images
from vlagent.index.search import Retriever
from vlagent.index.store import ImageIndex, make_client
from vlagent.serving.process import free_port


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    proc = subprocess.Popen(
        [exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:  # pragma: no cover - only when the server never comes up
            raise RuntimeError("chroma run did not start within 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_index_and_search_through_the_chroma_server(chroma_server, catalogue, tiny_clip_encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fixtures_clip import make_tiny_clip_settings

    model = tiny_clip_encoder.model_id.split(":", 1)[1]
    settings = make_tiny_clip_settings(model, tmp_path / "home", chroma_url=chroma_server)
    client = make_client(settings)
    assert type(client).__name__ != "PersistentClient" and client.heartbeat() > 0
    index = ImageIndex(client, settings.dataset, tiny_clip_encoder.model_id, tiny_clip_encoder.dim)
    with open_source(catalogue.folder) as source:
        summary = index_images(source, index, tiny_clip_encoder, batch_size=4)
    assert summary.indexed == len(catalogue.names)
    # a second worker (a new client) sees the same index
    retriever = Retriever.from_settings(settings, tiny_clip_encoder)
    name = catalogue.names[1]
    assert retriever.search_image(open_source(catalogue.folder).open(name), k=1)[0].image == name
    assert not (tmp_path / "home" / "index").exists()  # nothing went to the embedded store


def test_dead_chroma_url_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from vlagent.settings import Settings

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendUnavailableError, match=url.replace(".", r"\.")):
        make_client(Settings(home=tmp_path, chroma_url=url))
