"""The part both Ray pipelines share: starting or joining Ray, quietly, and one-line errors."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Any

from vlagent.errors import BackendUnavailableError, VlagentError, one_line

if TYPE_CHECKING:  # pragma: no cover
    from vlagent.settings import Settings



class Engine(str, Enum):
    """Where ``vlagent index`` / ``vlagent eval`` run: this process, or Ray."""

    local = "local"
    ray = "ray"

ENGINE_HELP = "local (this process) or ray (a local Ray, or the cluster at --address)"
ADDRESS_HELP = "with --engine ray: auto, or ray://head:10001 (default: start a local Ray; env VLAGENT_RAY_ADDRESS)"

log = logging.getLogger(__name__)


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise VlagentError("--engine ray needs Ray: pip install 'vlagent[ray]'") from None
    return ray


def _verbose() -> bool:
    return logging.getLogger().getEffectiveLevel() <= logging.INFO


def quiet_ray_data() -> None:
    """Ray Data's own progress bars and execution logs stay out of the terminal (we draw ours)."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    if not _verbose():
        for name in ("ray", "ray.data", "ray.data._internal"):
            logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def ray_session(settings: "Settings", address: str | None = None) -> Iterator[Any]:
    """Join the Ray cluster at ``address`` (or ``settings.ray_address``), or start a local Ray
    for the run (``ray_num_cpus``, ``ray_object_store_mb``, no dashboard). A session that is
    already initialised (a test fixture, a notebook) is used as it is and left running."""
    ray = require_ray()
    if ray.is_initialized():
        quiet_ray_data()
        yield ray
        return
    address = address or settings.ray_address
    common: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": _verbose(),
        "logging_level": logging.INFO if _verbose() else logging.ERROR,
    }
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not _verbose():  # start-up notices (token auth, usage stats) stay out of the terminal
        logging.getLogger("ray").setLevel(logging.ERROR)
    try:
        if address:
            ray.init(address=address, **common)
        else:
            ray.init(
                num_cpus=settings.ray_num_cpus,
                object_store_memory=settings.ray_object_store_mb * 1024 * 1024,
                **common,
            )
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise BackendUnavailableError(f"cannot start or join {where}: {one_line(exc)}") from None
    try:
        quiet_ray_data()
        yield ray
    finally:
        ray.shutdown()


def unwrap(exc: BaseException) -> BaseException:
    """The exception a Ray task or actor raised, without Ray's wrapper and remote traceback."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def as_user_error(exc: BaseException, what: str) -> VlagentError:
    """A failure inside Ray as one line: a ``VlagentError`` keeps its sentence."""
    inner = unwrap(exc)
    if isinstance(inner, VlagentError):
        return inner
    return VlagentError(f"{what}: {one_line(inner)}")


def gpus_available(ray: Any) -> float:
    return float(ray.cluster_resources().get("GPU", 0.0))


def stop(batches: Any) -> None:
    """Shut a Ray Data execution down (its tasks and actors) without waiting for the GC."""
    close = getattr(batches, "close", None)
    if callable(close):
        close()


@contextmanager
def draining(dataset: Any, batch_size: int, what: str, *, in_order: bool = False) -> Iterator[Iterator[Any]]:
    """The driver's side of a Ray Data pipeline: its numpy batches of ``batch_size`` rows (in
    the dataset's order with ``in_order``); anything that fails while they are consumed becomes
    one line, "``what``: ..."; and the execution is stopped at the end, after Ctrl-C too, so its
    tasks and actors give their CPUs back now."""
    from ray.data import DataContext

    options = DataContext.get_current().execution_options
    ordered = options.preserve_order
    if in_order:
        options.preserve_order = True
    batches = iter(dataset.iter_batches(batch_size=batch_size, batch_format="numpy"))
    try:
        yield batches
    except VlagentError:
        raise
    except Exception as exc:
        raise as_user_error(exc, what) from None
    finally:
        stop(batches)
        options.preserve_order = ordered
