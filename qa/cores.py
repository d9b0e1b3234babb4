"""The cores shared by the questions answered at once.

torch spreads one forward pass over every core, which is fastest for a question alone. When
several are answered at once, each spread over every core makes the threads wait on each other,
and one core each answers more of them in the same time (docs/decisions.md).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class CoreShare:
    """Counts the models' users (questions being answered, documents being embedded) and sets the
    calling thread's torch threads to its share.

    ``threads`` fixes the count instead (0: share the cores torch would use by default).
    """

    def __init__(self, threads: int = 0):
        self.threads = threads
        self._cores = 0
        self._users = 0
        self._lock = threading.Lock()

    @contextmanager
    def shared(self) -> Iterator[None]:
        """The block counts as one user of the models, and its thread starts with its share."""
        with self._lock:
            self._users += 1
        try:
            self.take_share()
            yield
        finally:
            with self._lock:
                self._users -= 1

    def take_share(self) -> None:
        """This thread's share of the cores, as things stand now (again before a later forward pass)."""
        import torch

        if self.threads:
            share = self.threads
        else:
            with self._lock:
                # torch's own count, read before this class first changes it
                self._cores = self._cores or torch.get_num_threads()
                share = max(1, self._cores // max(1, self._users))
        if torch.get_num_threads() != share:
            torch.set_num_threads(share)
