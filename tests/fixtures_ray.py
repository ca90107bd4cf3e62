"""One local Ray for the whole test session (2 CPUs, no dashboard, a small object store).

``ray_local`` (session) -> the ``ray`` module, initialised once with ``num_cpus=2`` and shut down
at the end. The vlagent Ray pipelines see an initialised Ray and use it as it is. The workers
inherit this process's environment at start-up: HF offline mode (conftest), and ``tests/`` on
``PYTHONPATH`` so that agent factories defined in test modules unpickle in the workers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def ray_local() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    paths = [str(TESTS), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=2, include_dashboard=False, object_store_memory=300 * 1024 * 1024,
            log_to_driver=False, logging_level="WARNING",
        )  # fmt: skip
    yield ray
    if started:
        ray.shutdown()
