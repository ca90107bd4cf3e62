"""A *light install* for every Python process started with this folder on ``PYTHONPATH``.

torch, torchvision, transformers and open_clip cannot be imported, as in an install without the
``vision`` extra, even though the test environment has them. Each attempt to *import* one is
appended to the file named by ``VLAGENT_TEST_IMPORT_LOG`` (module, pid, the line
that asked); asking whether one is installed (``importlib.util.find_spec``) is answered "no"
and not logged. Child processes (the doctor's and the LLM's self-checks) inherit it through
``PYTHONPATH``. Used by tests/test_light_install.py.
"""

from __future__ import annotations

import os
import sys
import traceback
from importlib.abc import MetaPathFinder

BLOCKED = frozenset({"torch", "torchvision", "transformers", "open_clip"})


def _importing() -> bool:
    """Whether the import system (an ``import`` statement), not a ``find_spec`` probe, asks."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "_find_and_load" and "importlib._bootstrap" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def _asker() -> str:
    """The line that imported (the last frame outside the import system and this file)."""
    frames = [f for f in traceback.extract_stack() if not f.filename.startswith("<") and f.filename != __file__]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


class NoVision(MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] not in BLOCKED:
            return None
        log = os.environ.get("VLAGENT_TEST_IMPORT_LOG")
        if log and _importing():
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(f"{name}\t{os.getpid()}\t{_asker()}\n")
        raise ModuleNotFoundError(f"No module named {name!r} (a light install: no vision extra)", name=name)


sys.meta_path.insert(0, NoVision())
