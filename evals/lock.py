"""One writer per output: an advisory lock file next to the journal (``answers.json.lock``).

``fcntl.flock`` on the lock file; the kernel releases it when the holding process ends, however
it ends (``kill -9`` included), so a lock left by a dead run is simply taken over. The holder's
pid is kept in the file for the message a second run gets.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from vlagent.errors import VlagentError

LOCK_SUFFIX = ".lock"


class OutputLockedError(VlagentError):
    """Another live process is writing the same output."""


def lock_path(out: str | Path) -> Path:
    """``answers.json`` → ``answers.json.lock`` (next to the output and its journal)."""
    out = Path(out)
    return out.with_name(out.name + LOCK_SUFFIX)


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return "unknown"
    return text or "unknown"


class OutputLock:
    """``with OutputLock(out): ...`` — raises :class:`OutputLockedError` at once if held."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.path = lock_path(out)
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise OutputLockedError(
                    f"{self.out} is being written by another run (pid {_holder(self.path)}, lock "
                    f"{self.path.name}); wait for it to finish or choose another --out"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            # the holder we waited on may have removed the file: lock the file that is there now
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it (see acquire)
        except OSError:
            pass
        os.close(self._fd)  # closing releases the flock
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
