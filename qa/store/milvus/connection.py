"""The Milvus client of one index: every call bounded by a timeout, an unreachable server a BackendUnavailable."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path

import grpc
from pymilvus import MilvusClient
from pymilvus.exceptions import ConnectionConfigException, MilvusException

from ...errors import BackendUnavailable, IndexCorrupt
from ..backends import MilvusAddress

# pymilvus prints its records itself, on handlers of its own. Its errors are the failed calls that
# `reported` turns into BackendUnavailable, each with a traceback, and its one warning here is
# that Milvus Lite gives no MVCC timestamp: only critical records go on, to the application's handlers.
for _name in ("pymilvus", "pymilvus.milvus_client", "pymilvus.bulk_writer"):
    _logger = logging.getLogger(_name)
    _logger.handlers.clear()
    _logger.propagate = True
    _logger.setLevel(logging.CRITICAL if _name == "pymilvus" else logging.NOTSET)

# pymilvus's code for a channel that never became ready (refused, unresolvable, silent).
_CONNECT_FAILED = 2
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# Milvus's code for a collection held released: a restarted server holds every collection so.
_NOT_LOADED = 101


class Milvus:
    """``MilvusClient``'s methods, each called with the address's timeout; a server that cannot be
    reached or does not answer in time raises BackendUnavailable instead of hanging or leaking
    a gRPC error."""

    def __init__(self, address: MilvusAddress):
        self.address = address
        with self.reported():
            if address.is_lite_path:  # Milvus Lite keeps its data in a folder of that name
                Path(address.uri).parent.mkdir(parents=True, exist_ok=True)
            self._client = MilvusClient(uri=address.uri, token=address.token or "", timeout=address.timeout_s)

    def __getattr__(self, name: str):
        method = getattr(self._client, name)

        @functools.wraps(method)
        def bounded(*args, **kwargs):
            with self.reported():
                return self._loaded(args[0] if args else kwargs.get("collection_name"),
                                    functools.partial(method, *args, timeout=self.address.timeout_s, **kwargs))
        return bounded

    def _loaded(self, collection: str | None, call):
        """``call()``; when Milvus restarted since this client loaded ``collection``, loaded again first."""
        try:
            return call()
        except MilvusException as exc:
            if exc.code != _NOT_LOADED or not isinstance(collection, str):
                raise
        self.load(collection)
        return call()

    def load(self, collection: str) -> None:
        """Load ``collection`` for search. A server that answers but cannot (it lost or damaged its
        files) holds an unreadable index: IndexCorrupt, with the server's reason."""
        with self.reported():
            try:
                self._client.load_collection(collection, timeout=self.address.timeout_s)
            except MilvusException as exc:
                if _unreachable(exc):
                    raise
                raise IndexCorrupt(f"Milvus at {self.address.uri} cannot load the collection "
                                   f"{collection}: {exc.message}") from exc

    def rows(self, collection: str, where: str, fields: list[str], batch: int = 1000) -> Iterator[dict]:
        """Every row matching ``where``, however many (one query is capped by the server)."""
        with self.reported():
            pages = self._loaded(collection, functools.partial(
                self._client.query_iterator, collection, batch_size=batch, filter=where, output_fields=fields,
                timeout=self.address.timeout_s))
            try:
                while page := pages.next():
                    yield from page
            finally:
                pages.close()

    @contextlib.contextmanager
    def reported(self) -> Iterator[None]:
        try:
            yield
        except grpc.RpcError as exc:
            if exc.code() not in _UNREACHABLE:
                raise
            raise self._unavailable(exc.details()) from exc
        except MilvusException as exc:
            if not _unreachable(exc):
                raise
            raise self._unavailable(exc.message) from exc

    def _unavailable(self, reason: str) -> BackendUnavailable:
        return BackendUnavailable(f"Milvus at {self.address.uri} is unavailable "
                                  f"(no answer within {self.address.timeout_s:g} s or refused): {reason}")


def _unreachable(exc: MilvusException) -> bool:
    # A timeout that pymilvus retried until the deadline comes back with gRPC's code.
    return isinstance(exc, ConnectionConfigException) or exc.code == _CONNECT_FAILED or exc.code in _UNREACHABLE
