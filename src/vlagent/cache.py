"""A small on-disk cache for per-image model work (OCR, captions, embeddings, colours).

Keys are ``(kind, model_id, content_hash, extra)``: the same image bytes with the same model
are computed once, across runs and across processes (SQLite, WAL). Values are JSON.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class DiskCache:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT)")
        self._db.commit()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(kind: str, model_id: str, content_hash: str, extra: str = "") -> str:
        return f"{kind}|{model_id}|{content_hash}|{extra}"

    def get(self, key: str) -> Any | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM cache WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO cache (key, value) VALUES (?, ?)",
                (key, json.dumps(value, ensure_ascii=False)),
            )
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
            return int(self._db.execute("SELECT COUNT(*) FROM cache").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
