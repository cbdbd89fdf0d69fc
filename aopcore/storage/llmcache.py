"""A persistent response cache for LLM calls (SQLite), shared by every FeedbackLLM and Judge backend.

Keyed by provider, model, the request and its sampling parameters, never by
credentials, so a rerun or a resume never pays for the same call twice and no
secret reaches the cache file. :class:`InFlight` extends that to calls made at the
same moment: an identical request already on its way is waited for, not sent again.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def default_cache_path() -> Path:
    root = os.environ.get("AOPCORE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "aopcore"
    )
    return Path(root) / "llm-cache.sqlite"


def cache_key(provider: str, model: str, request: Any, params: dict[str, Any]) -> str:
    blob = json.dumps(
        {"provider": provider, "model": model, "request": request, "params": params}, sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: every committed response survives a crash or kill of this process; only an OS crash
            # could lose the last few. Full fsync per response would cap throughput at the disk's flush rate.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT NOT NULL, meta TEXT, created REAL)"
            )
            self._db.commit()

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                rows = self._db.execute(
                    f"SELECT key, text FROM responses WHERE key IN ({','.join('?' * len(chunk))})", chunk
                )
                found.update(dict(rows.fetchall()))
        return found

    def get(self, key: str) -> str | None:
        return self.get_many([key]).get(key)

    def put(self, key: str, text: str, meta: dict[str, Any] | None = None) -> None:
        """Store one response immediately (committed), so a crash right after loses nothing that was paid for."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)", (key, text, json.dumps(meta or {}), time.time())
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class InFlight:
    """Requests on their way, by cache key: the first caller of a key sends it, any other caller waits for its answer.

    Works across threads and event loops (plain ``concurrent.futures`` futures). An owner must ``resolve`` or
    ``abandon`` every key it claimed; a waiter whose owner abandoned (its batch failed) sends the request itself.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[str, concurrent.futures.Future] = {}

    def claim(
        self, keys: Iterable[str]
    ) -> tuple[dict[str, concurrent.futures.Future], dict[str, concurrent.futures.Future]]:
        """(keys this caller now owns and must send, keys another caller is sending), each with its future."""
        owned: dict[str, concurrent.futures.Future] = {}
        joined: dict[str, concurrent.futures.Future] = {}
        with self._lock:
            for key in dict.fromkeys(keys):
                if key in self._futures:
                    joined[key] = self._futures[key]
                else:
                    owned[key] = self._futures[key] = concurrent.futures.Future()
        return owned, joined

    def resolve(self, key: str, text: str) -> None:
        with self._lock:
            future = self._futures.pop(key, None)
        if future is not None:
            future.set_result(text)

    def abandon(self, owned: dict[str, concurrent.futures.Future]) -> None:
        """Release the claims this owner did not answer (its batch raised or was cancelled); answered ones are gone."""
        with self._lock:
            futures = [self._futures.pop(k) for k, f in owned.items() if self._futures.get(k) is f]
        for future in futures:
            future.set_exception(Abandoned())

    def __len__(self) -> int:
        with self._lock:
            return len(self._futures)


class Abandoned(Exception):
    """The caller that owned a request gave up on it; whoever waited sends it again."""


IN_FLIGHT = InFlight()  # one per process: identical requests from any backend instance or thread meet here
