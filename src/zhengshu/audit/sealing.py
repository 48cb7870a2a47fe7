"""Seal audit records right after the transaction that wrote them commits, off the request's path.

``record()`` marks its session; when that session commits, the engine is handed to one background thread per
process, which seals everything waiting (``service.seal``) on a connection of its own. Commits that arrive
while it works coalesce into its next pass, and a pass starts no sooner than ``MIN_PASS_INTERVAL`` after the
previous one: under load a pass then seals the records of many commits (each pass is a transaction of its
own: three statements on PostgreSQL), while a lone commit is sealed at once. Best effort: if it fails, or
another process's sealer holds the lock and has already read the queue, the next commit, the ``audit.seal``
job (every minute) or ``verify()`` seals the rest.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from zhengshu.core.db import after_transaction

log = logging.getLogger(__name__)

# Seal after each commit that wrote audit records; off, only the minute job and verify() seal (tests).
AFTER_COMMIT = True
# Another sealer held the lock: it may have read the queue before our commit, so look again shortly.
RETRY_DELAYS = (0.05, 0.2, 1.0)
EXIT_WAIT = 5.0  # seconds a process waits at exit for its last seal
MIN_PASS_INTERVAL = 0.1  # seconds between the starts of two passes; wait_idle() cuts the pause short


def mark(session: Session) -> None:
    """Called by ``record()``: seal once this record's transaction has committed for good (the outermost
    COMMIT: a savepoint's RELEASE, such as the request's event delivery, is not one)."""
    after_transaction(session, committed=lambda: _schedule(session))


def _schedule(session: Session) -> None:
    if not AFTER_COMMIT:
        return
    try:
        bind = session.get_bind()
    except Exception:  # an unbound session cannot have written anything we could seal
        return
    _sealer().schedule(bind.engine if isinstance(bind, Connection) else bind)


class _Sealer:
    """One daemon thread; engines wait in a dict (id → engine) so a burst of commits is one pass."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wanted: dict[int, tuple[Engine, int]] = {}
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._hurry = threading.Event()  # someone waits for the seal: no pause before the next pass
        self._thread: threading.Thread | None = None

    def schedule(self, engine: Engine, attempt: int = 0) -> None:
        with self._lock:
            known = self._wanted.get(id(engine))
            self._wanted[id(engine)] = (engine, min(attempt, known[1]) if known else attempt)
            self._idle.clear()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="audit-sealer", daemon=True)
                self._thread.start()
        self._wake.set()

    def wait_idle(self, timeout: float) -> bool:
        """For tests and short-lived processes: wait until nothing is scheduled."""
        self._hurry.set()
        return self._idle.wait(timeout)

    def _run(self) -> None:
        from zhengshu.audit.service import seal

        last_pass = -MIN_PASS_INTERVAL
        while True:
            self._wake.wait()
            pause = last_pass + MIN_PASS_INTERVAL - time.monotonic()
            if pause > 0:
                self._hurry.wait(pause)  # let the commits arriving meanwhile join this pass
            self._wake.clear()
            last_pass = time.monotonic()
            with self._lock:
                batch = list(self._wanted.values())
                self._wanted.clear()
            for engine, attempt in batch:
                try:
                    done = seal(engine)
                except Exception:
                    log.warning("audit: sealing after commit failed; the audit.seal job will retry", exc_info=True)
                    continue
                if done is None and attempt < len(RETRY_DELAYS):
                    time.sleep(RETRY_DELAYS[attempt])
                    self.schedule(engine, attempt + 1)
            with self._lock:
                if not self._wanted:
                    self._hurry.clear()
                    self._idle.set()


_state: dict[str, object] = {}


def _sealer() -> _Sealer:
    # per process: a forked child (Uvicorn workers, huey) gets its own thread
    pid = os.getpid()
    if _state.get("pid") != pid:
        _state["pid"], _state["sealer"] = pid, _Sealer()
        # a CLI command exits right after its commit: give its records the moment they need to be sealed
        atexit.register(wait_idle, EXIT_WAIT)
    sealer = _state["sealer"]
    assert isinstance(sealer, _Sealer)
    return sealer


def wait_idle(timeout: float = 10.0) -> bool:
    return _sealer().wait_idle(timeout)
