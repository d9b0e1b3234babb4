"""Models run as frozen TorchScript traces: the same arithmetic, without Python around every layer.

For one question, or one passage, much of an eager forward pass is Python: the modules, hooks and
mask helpers wrapped around each small matrix product. A trace records the tensor operations of
one call and replays them for inputs of any batch size and length (docs/decisions.md has the
figures, and the alternatives measured). A model that cannot be traced runs eagerly.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)


def frozen_trace(module, *, args: tuple = (), kwargs: dict[str, Any] | None = None) -> Callable:
    """``module``, traced on the example call ``module(*args, **kwargs)`` and frozen; ``module``
    itself when tracing fails. Either way it is called like ``module`` and returns its outputs
    (a model output's fields by name)."""
    import torch

    module.eval()
    try:
        # torch.jit's deprecation notice, the tracer's notes on Python branches and the library's
        # notes on the attributes the tracer reads are not for the user: the traced forward is
        # checked against the eager one (tests/test_traced.py).
        with warnings.catch_warnings(), _quiet(_package_logger(module)), torch.inference_mode():
            warnings.simplefilter("ignore")
            trace = torch.jit.trace(module, args or None, example_kwarg_inputs=kwargs, strict=False,
                                    check_trace=False)
            return torch.jit.freeze(trace)
    except Exception as error:  # any model a user names may hold code the tracer cannot follow
        log.warning("%s runs untraced, more slowly: %s", type(module).__name__, error)
        return module


def _package_logger(module) -> logging.Logger:
    return logging.getLogger(type(module).__module__.split(".")[0])


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
