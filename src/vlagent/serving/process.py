"""Start model servers as child processes, wait until they answer, stop them cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from vlagent.errors import BackendUnavailableError, VlagentError
from vlagent.serving.commands import ServeSpec
from vlagent.models.health import check_server


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if we die without stopping it (no orphaned servers)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host if host not in ("", "localhost") else "127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (for tests and `--port 0`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One server child process; its output goes to ``log_path``."""

    def __init__(self, spec: ServeSpec, log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if not port_free(self.spec.host, self.spec.port):
            raise VlagentError(
                f"port {self.spec.port} on {self.spec.host} is in use: stop what runs there or set "
                f"VLAGENT_SERVE_{self.spec.role.upper()}_PORT"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the child for its lifetime
        env = {**os.environ, **self.spec.env}
        try:
            # own session: the terminal's Ctrl-C reaches us, and we stop the child in order
            self.proc = subprocess.Popen(
                self.spec.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip
        except FileNotFoundError as exc:
            raise VlagentError(f"cannot start {self.spec.argv[0]!r}: not found on PATH") from exc
        finally:
            log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return "".join(deque(fh, maxlen=lines)).rstrip()
        except OSError:
            return ""

    def wait_ready(
        self, timeout: float, progress: Callable[[float], None] | None = None, poll: float = 0.5
    ) -> list[str]:
        """Poll GET /v1/models until it answers; raise if the child dies or time runs out."""
        start = time.monotonic()
        while True:
            if not self.running:
                code = self.proc.returncode if self.proc else None
                raise BackendUnavailableError(
                    f"the {self.spec.engine} server for the {self.spec.role} exited (code {code}) "
                    f"before answering; log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                return check_server(self.spec.base_url, timeout=2.0)
            except BackendUnavailableError:
                pass
            elapsed = time.monotonic() - start
            if progress:
                progress(elapsed)
            if elapsed > timeout:
                raise BackendUnavailableError(
                    f"the {self.spec.engine} server at {self.spec.base_url} did not answer within "
                    f"{timeout:g} s; log {self.log_path}"
                )
            time.sleep(poll)

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM, wait ``grace`` seconds, then SIGKILL; then the same for whatever the server
        started in its process group (vLLM's engine core, its resource tracker) and left behind.
        Returns the server's exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        stop_group(self.proc.pid, grace=5.0)
        return self.proc.returncode


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a member we may not signal is still a member
        return True
    return True


def stop_group(pgid: int, grace: float = 5.0) -> None:
    """SIGTERM every process left in process group ``pgid`` (a server started with its own
    session leads one), wait up to ``grace`` seconds, then SIGKILL what is still there."""
    if not _group_alive(pgid):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _group_alive(pgid):
                return
            time.sleep(0.1)


def serve_until_stopped(
    servers: list[ServerProcess],
    stop_event: threading.Event | None = None,
    poll: float = 0.5,
) -> str:
    """Block until Ctrl-C / SIGTERM (or ``stop_event``) or a child dies; then stop all children.

    Returns why it stopped: "signal", "event" or "exited: <role>".
    """
    event = stop_event or threading.Event()
    reason = ["event"]
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():

        def handler(signum: int, frame: object) -> None:
            reason[0] = "signal"
            event.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    try:
        while not event.wait(poll):
            dead = [s for s in servers if not s.running]
            if dead:
                reason[0] = f"exited: {dead[0].spec.role}"
                break
    finally:
        for server in reversed(servers):
            server.stop()
        for sig, old in previous.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
    return reason[0]
