"""A small on-disk cache for per-image model work (OCR, captions, embeddings, colours).

Keys are ``(kind, model_id, content_hash, extra)``: the same image bytes with the same model
are computed once, across runs and across processes (SQLite, WAL). Values are JSON.

A cache is never a reason to fail: a corrupt cache file is moved aside (``*.corrupt-<time>``)
and a new one started; a folder that cannot be written gives an in-memory cache for this
process; an unreadable entry is a miss. Each case is logged once as a warning.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class DiskCache:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.problem: str | None = None  # why the cache is not (fully) on disk, if it is not
        self._db = self._open()

    def _connect(self, where: str) -> sqlite3.Connection:
        db = sqlite3.connect(where, check_same_thread=False, timeout=30)
        try:
            if where != ":memory:":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT)")
            db.commit()
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._connect(str(self.path))
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) or "malformed" in str(exc):
                aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
                try:
                    self.path.rename(aside)
                    for suffix in ("-wal", "-shm"):
                        Path(f"{self.path}{suffix}").unlink(missing_ok=True)
                    log.warning("the cache %s was corrupt (%s): moved to %s, starting a new one", self.path, exc, aside)
                    return self._connect(str(self.path))
                except (OSError, sqlite3.Error):
                    pass
            self.problem = f"cannot use the cache {self.path} ({exc}); caching in memory for this run"
        except OSError as exc:
            self.problem = f"cannot use the cache {self.path} ({exc.strerror or exc}); caching in memory for this run"
        log.warning("%s", self.problem)
        return self._connect(":memory:")

    @staticmethod
    def key(kind: str, model_id: str, content_hash: str, extra: str = "") -> str:
        return f"{kind}|{model_id}|{content_hash}|{extra}"

    def _fall_back(self, exc: Exception) -> None:
        """The file broke while in use (deleted, corrupted, made read-only): go on in memory."""
        if self.problem is None:
            self.problem = f"the cache {self.path} failed ({exc}); caching in memory for this run"
            log.warning("%s", self.problem)
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = self._connect(":memory:")

    def get(self, key: str) -> Any | None:
        with self._lock:
            try:
                row = self._db.execute("SELECT value FROM cache WHERE key=?", (key,)).fetchone()
            except sqlite3.Error as exc:
                self._fall_back(exc)
                return None
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except (TypeError, ValueError):
            return None  # a damaged entry is a miss; put() overwrites it

    def put(self, key: str, value: Any) -> None:
        text = json.dumps(value, ensure_ascii=False)
        with self._lock:
            try:
                self._db.execute("INSERT OR REPLACE INTO cache (key, value) VALUES (?, ?)", (key, text))
                self._db.commit()
            except sqlite3.Error as exc:
                self._fall_back(exc)
                self._db.execute("INSERT OR REPLACE INTO cache (key, value) VALUES (?, ?)", (key, text))
                self._db.commit()

    def get_or_compute(self, key: str, compute: Callable[[], T]) -> T:
        value = self.get(key)
        if value is not None:
            self.hits += 1
            return value  # type: ignore[return-value]
        self.misses += 1
        value = compute()
        self.put(key, value)
        return value

    def __len__(self) -> int:
        with self._lock:
            try:
                return int(self._db.execute("SELECT COUNT(*) FROM cache").fetchone()[0])
            except sqlite3.Error:
                return 0

    def close(self) -> None:
        with self._lock:
            self._db.close()
