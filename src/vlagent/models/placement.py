"""Where and how a transformers model runs: its device, its dtype and its attention kernel,
decided here once for every role that loads one (CLIP, BLIP captions and matching, the VLM,
the transformers LLM), and applied when the model is loaded (placed once, never per call).

* **device**: ``settings.resolved_device()`` (``auto``: ``cuda``, else ``mps``, else ``cpu``);
  never the raw string ``"auto"``, which ``torch`` refuses.
* **dtype** (``settings.model_dtype``; ``auto``): on CPU ``float32``, except the generators
  (Qwen2-VL, the LLM) on a CPU with native bf16 matrix units (AMX-BF16 or AVX512-BF16), which
  keep their published ``bfloat16`` (4.5x faster than float32 there for a Qwen2 layer's matmul).
  transformers 5 loads a checkpoint in the dtype it was saved in (``dtype="auto"`` is its
  default), so the bf16 Qwen checkpoints ran in bf16 on every CPU, emulated and slow on the
  many without those units. MPS: ``float32``. On CUDA: ``float16`` for the encoders (CLIP,
  BLIP: what they were released and are served in), the checkpoint's ``bfloat16`` for the
  generators (fp16 can overflow in their activations), ``float16`` on a GPU without bf16.
* **attention** (``settings.attn_implementation``; ``auto``): ``flash_attention_2`` where the
  ``flash_attn`` package is installed, the model is on CUDA in half precision and the model
  class supports it; else ``sdpa`` (PyTorch's fused attention) where the class supports it;
  else transformers' own choice (``eager``, e.g. BLIP).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from vlagent.settings import Settings

Kind = Literal["encoder", "generator"]
DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class Placement:
    """A model's device, dtype (a ``torch`` dtype name) and attention kernel (None: the default)."""

    device: str
    dtype: str
    attn: str | None = None

    @property
    def torch_dtype(self) -> "torch.dtype":
        import torch

        return getattr(torch, self.dtype)  # type: ignore[no-any-return]

    @property
    def half(self) -> bool:
        return self.dtype != "float32"

    def load_kwargs(self) -> dict[str, Any]:
        """The ``from_pretrained`` keywords (``dtype=`` needs transformers >= 4.56)."""
        kwargs: dict[str, Any] = {"dtype": self.torch_dtype}
        if self.attn:
            kwargs["attn_implementation"] = self.attn
        return kwargs


def _is_cuda(device: str) -> bool:
    return device.split(":")[0] == "cuda"


def _bf16_supported(device: str) -> bool:
    import torch

    try:
        return bool(torch.cuda.is_bf16_supported())
    except Exception:  # noqa: BLE001 - no CUDA runtime: no bf16 either
        return False


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AMX tiles or AVX512-BF16); without
    them PyTorch emulates bf16, several times slower than float32."""
    import torch

    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        try:
            if getattr(torch.cpu, probe)():
                return True
        except Exception:  # noqa: BLE001 - an older torch without the probe: not known to have it
            continue
    return False


def resolve_dtype(choice: str, device: str, kind: Kind) -> str:
    """The dtype name for ``choice`` (``auto`` or a name in :data:`DTYPES`) on ``device``."""
    if choice != "auto":
        if choice not in DTYPES:
            raise ValueError(f"model dtype {choice!r}: expected auto, {', '.join(DTYPES)}")
        return choice
    if not _is_cuda(device):
        if kind == "generator" and device == "cpu" and cpu_has_native_bf16():
            return "bfloat16"
        return "float32"
    if kind == "generator" and _bf16_supported(device):
        return "bfloat16"
    return "float16"


def flash_attn_installed() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def _supports(model_cls: Any, *flags: str) -> bool:
    return any(bool(getattr(model_cls, flag, False)) for flag in flags)


def resolve_attention(choice: str, model_cls: Any, device: str, dtype: str) -> str | None:
    """The ``attn_implementation`` to ask for (None: leave it to transformers)."""
    if choice != "auto":
        return choice
    if model_cls is None:
        return None
    flash_ok = _is_cuda(device) and dtype != "float32" and flash_attn_installed()
    if flash_ok and _supports(model_cls, "_supports_flash_attn", "_supports_flash_attn_2"):
        return "flash_attention_2"
    if _supports(model_cls, "_supports_sdpa"):
        return "sdpa"
    return None


def resolve(device: str, dtype: str, attn: str, kind: Kind, model_cls: Any = None) -> Placement:
    """The placement of a model of ``model_cls`` for the choices ``dtype`` / ``attn`` (``auto``)."""
    chosen = resolve_dtype(dtype, device, kind)
    return Placement(device, chosen, resolve_attention(attn, model_cls, device, chosen))


def placement(settings: "Settings", kind: Kind, model_cls: Any = None) -> Placement:
    """Where and how a model of ``model_cls`` runs under ``settings``."""
    return resolve(settings.resolved_device(), settings.model_dtype, settings.attn_implementation, kind, model_cls)


def architecture(name: str, local_files_only: bool = False) -> Any:
    """The transformers class a saved model names (its config's ``architectures``; reads
    config.json only). None when it cannot tell: the load that follows reports the real problem."""
    import transformers
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(name, local_files_only=local_files_only)
    except Exception:  # noqa: BLE001 - a missing or broken model: the loader's own error says which
        return None
    for arch in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, arch, None)
        if cls is not None:
            return cls
    return None


def cpu_placement() -> Placement:
    return Placement("cpu", "float32")


def load_pretrained(model_cls: Any, name: str, place: Placement, local_files_only: bool = False, **kwargs: Any) -> Any:
    """``model_cls.from_pretrained`` in ``place``'s dtype and attention, moved to its device
    once, in eval mode."""
    model = model_cls.from_pretrained(name, local_files_only=local_files_only, **place.load_kwargs(), **kwargs)
    return model.to(place.device).eval()


def param_dtype(model: Any) -> "torch.dtype":
    """The dtype of ``model``'s (first floating-point) parameters: what its inputs are cast to."""
    import torch

    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


__all__ = [
    "DTYPES",
    "Kind",
    "Placement",
    "architecture",
    "cpu_has_native_bf16",
    "cpu_placement",
    "flash_attn_installed",
    "load_pretrained",
    "param_dtype",
    "placement",
    "resolve",
    "resolve_attention",
    "resolve_dtype",
]
