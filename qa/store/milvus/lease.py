"""One writer at a time per index in Milvus: a lease, one row of the manifest collection.

Milvus has no compare-and-set, only reads and writes of a row; the lease is taken by Fischer's
timed mutual exclusion over that row. A writer reads the row; when it is free (released, expired,
or held by a process of this machine that is gone) the writer writes its own claim, and only when
read and write took under ``SETTLE_S`` together does it wait ``SETTLE_S`` more and read again: the
claim is its own when the row still names it. Any other claimant read the free row less than
``SETTLE_S`` before writing, so its write landed before that second read: two writers never both
find their claim. A writer whose claim took too long does not count on it.

The holder renews the lease from a thread every ``LEASE_S / 3`` seconds, and stops writing
(``check``) once it cannot tell that the lease is still its own with a third of ``LEASE_S`` to
spare. Another machine's writer takes over a lease only once it expired by its own clock: sound
while the clocks agree within ``LEASE_S / 3`` and no call or pause of a holder outlasts that.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from ...errors import BackendUnavailable, IndexBusy
from .collections import NO_VECTOR, NO_VECTOR_VALUE, Collections
from .connection import Milvus

LEASE_S = 30.0
SETTLE_S = 0.5
WAIT_S = 30.0  # as the local index's writer waits for its lock
_KEY = "writer"
_POLL_S = 0.2

# The leases of this process's writers: a lease of this process that is not here is a dead writer's.
_holding: set[str] = set()
_holding_lock = threading.Lock()


def _machine() -> str:
    """This machine and process namespace: where a process id means the same process."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return ""  # no /proc: other processes' leases can only expire


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks after boot); None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[19]


class WriterLease:
    """The lease of one writer on the index at ``names``."""

    def __init__(self, milvus: Milvus, names: Collections, *, wait_s: float = WAIT_S):
        self.milvus = milvus
        self.names = names
        self.wait_s = wait_s
        self.token = uuid.uuid4().hex
        self._valid_until = 0.0  # monotonic; 0 when not held
        self._lost = False
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lease, waiting up to ``wait_s`` for its holder; IndexBusy when it does not let go."""
        with _holding_lock:
            _holding.add(self.token)
        try:
            self._take()
        except BaseException:
            with _holding_lock:
                _holding.discard(self.token)
            raise
        self._renewer = threading.Thread(target=self._renew_until_stopped, name="milvus-writer-lease", daemon=True)
        self._renewer.start()

    def _take(self) -> None:
        deadline = time.monotonic() + self.wait_s
        holder: dict = {}
        while True:
            began = time.monotonic()
            holder = self._read()
            if self._free(holder):
                self._write(began)
                if time.monotonic() - began < SETTLE_S:
                    time.sleep(SETTLE_S)
                    if self._read().get("token") == self.token:
                        self._valid_until = began + LEASE_S * 2 / 3
                        return
            if time.monotonic() > deadline:
                raise IndexBusy(f"another process is writing the index in the Milvus at {self.milvus.address.uri} "
                                f"(collections {self.names.prefix}_*): {_describe(holder)}")
            time.sleep(_POLL_S)

    def _free(self, holder: dict) -> bool:
        token = holder.get("token")
        if not token:
            return True  # never taken, or released
        if token == self.token:
            return False  # a claim of ours that took too long: it counts for nothing, wait for it to expire
        if holder.get("expires_at", 0.0) < time.time():
            return True
        if holder.get("machine") and holder.get("machine") == _machine():
            if holder.get("pid") == os.getpid():
                with _holding_lock:
                    return token not in _holding
            return _started(holder.get("pid", 0)) != holder.get("started")
        return False

    def _read(self) -> dict:
        rows = self.milvus.get(self.names.manifest, ids=[_KEY], output_fields=["value"])
        return dict(rows[0]["value"]) if rows else {}

    def _write(self, began: float, *, release: bool = False) -> None:
        value = {} if release else {
            "token": self.token, "machine": _machine(), "pid": os.getpid(), "started": _started(os.getpid()),
            "host": socket.gethostname(), "expires_at": time.time() - (time.monotonic() - began) + LEASE_S}
        self.milvus.upsert(self.names.manifest, [{"key": _KEY, "value": value, NO_VECTOR: NO_VECTOR_VALUE}])

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(LEASE_S / 3):
            began = time.monotonic()
            try:
                if self._read().get("token") != self.token:
                    self._lost = True
                    return
                self._write(began)
            except BackendUnavailable:
                continue  # ``check`` fails once the lease may have expired
            self._valid_until = began + LEASE_S * 2 / 3

    def check(self) -> None:
        """IndexBusy unless the lease is surely still this writer's for a while: before each write."""
        if self._lost or time.monotonic() > self._valid_until:
            raise IndexBusy(f"this writer lost its lease on the index in the Milvus at {self.milvus.address.uri} "
                            f"(collections {self.names.prefix}_*); nothing it staged was committed")

    def release(self) -> None:
        """Give the lease back (when the server answers: otherwise it expires, or is seen as dead)."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        try:
            with contextlib.suppress(BackendUnavailable):
                if not self._lost and self._valid_until and self._read().get("token") == self.token:
                    self._write(time.monotonic(), release=True)
        finally:
            self._valid_until = 0.0
            with _holding_lock:
                _holding.discard(self.token)


def _describe(holder: dict) -> str:
    if not holder.get("token"):
        return "the lease could not be taken in time"
    left = holder.get("expires_at", 0.0) - time.time()
    return (f"the writer of process {holder.get('pid')} on {holder.get('host')!r} holds its lease "
            f"(for {max(left, 0.0):.0f} s more unless renewed)")
