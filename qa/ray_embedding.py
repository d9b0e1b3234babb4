"""Indexing's embedding spread over Ray actors, each loading the model once.

The actors embed the very groups ``Embedder.batches`` makes, so the vectors are those of one
process. Only ``qa index`` with ``QA_EMBED_WORKERS`` above 0 imports this module (and Ray).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from .embedding import Embedder
from .errors import EmbedWorkersUnavailable
from .settings import Settings

try:
    import ray
    from ray.exceptions import RayError
    from ray.util import ActorPool
except ImportError:
    ray = None

# Each actor loads its model before taking work, so that a worker without the model (or without a
# free CPU) fails the run before anything is embedded.
START_TIMEOUT_S = 120
CONNECT_TIMEOUT_S = 5


class RayEmbedder(Embedder):
    """An Embedder whose groups are embedded by Ray actors; the tokenizer and dimension stay local."""

    def __init__(self, embedder: Embedder, actors: Sequence):
        super().__init__(embedder.model_name, embedder.batch_size, embedder.torch_threads, embedder.precision)
        self.pool = ActorPool(list(actors))

    def encode_groups(self, groups: Sequence[Sequence[str]]) -> Iterator[np.ndarray]:
        return self.pool.map(lambda actor, group: actor.encode_batch.remote(group), groups)


@contextmanager
def ray_embedder(settings: Settings, embedder: Embedder) -> Iterator[RayEmbedder]:
    """``embedder`` spread over ``settings.embed_workers`` Ray actors for the block. A Ray this process
    has already joined is used as it is, and left running."""
    if ray is None:
        raise EmbedWorkersUnavailable("QA_EMBED_WORKERS needs Ray: pip install 'qa-extractive[ray]'")
    joined = _join(settings.ray_address, settings.embed_workers * _cpus_per_actor(embedder))
    actors = []
    try:
        actors = _spawn_actors(embedder, settings.embed_workers)
        _wait_until_loaded(actors, embedder)
        yield RayEmbedder(embedder, actors)
    finally:
        for actor in actors:
            ray.kill(actor)
        if joined:
            ray.shutdown()


def _join(address: str | None, cpus: int) -> bool:
    """Joins the Ray at ``address``, or starts one on this machine with room for ``cpus`` (even
    beyond its cores: the workers asked for, rather than some waiting for ever); False if this
    process had already joined one."""
    if ray.is_initialized():
        return False
    if address not in (None, "auto"):
        _check_reachable(address)
    local = {"num_cpus": max(os.cpu_count() or 1, cpus)} if address is None else {}
    try:
        # Ray's own start-up messages and the workers' output would drown the command's.
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False,
                 **local)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise EmbedWorkersUnavailable(f"cannot join Ray at {address or 'a new local cluster'}: {exc}") from None
    return True


def _check_reachable(address: str) -> None:
    """Ray retries an address that does not answer for minutes; one TCP connection tells at once."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not (host and port.isdigit()):
        raise EmbedWorkersUnavailable(f"QA_RAY_ADDRESS={address!r} is not an address of Ray; it takes "
                                      "ray://HOST:10001, HOST:6379 or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise EmbedWorkersUnavailable(f"no Ray cluster answers at QA_RAY_ADDRESS={address!r}: {exc}") from None


def _spawn_actors(embedder: Embedder, workers: int) -> list:
    # torch in an actor uses as many threads as the CPUs Ray gives it.
    actor_class = ray.remote(num_cpus=_cpus_per_actor(embedder))(Embedder)
    return [actor_class.remote(embedder.model_name, embedder.batch_size, embedder.torch_threads,
                               embedder.precision) for _ in range(workers)]


def _cpus_per_actor(embedder: Embedder) -> int:
    return embedder.torch_threads or 1


def _wait_until_loaded(actors: Sequence, embedder: Embedder) -> None:
    loaded = [actor.encode_batch.remote(["load the model"]) for actor in actors]
    _, waiting = ray.wait(loaded, num_returns=len(loaded), timeout=START_TIMEOUT_S)
    if waiting:
        raise EmbedWorkersUnavailable(
            f"{len(waiting)} of {len(actors)} Ray workers did not start within {START_TIMEOUT_S} s; each needs "
            f"{_cpus_per_actor(embedder)} CPU and the cluster has {ray.cluster_resources().get('CPU', 0):g}")
    try:
        ray.get(loaded)
    except RayError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise EmbedWorkersUnavailable(
            f"a Ray worker cannot load the model {embedder.model_name!r}: {reason}") from None
