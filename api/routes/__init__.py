"""The API's routes, one module per area; each gets what it needs from FastAPI dependencies.

Request bodies carry the server's limits (``api.schemas.bounded_request_models``), so each app
has its own body models: a route that takes a body is added per app with ``with_body``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

from pydantic import BaseModel


def with_body(endpoint: Callable, model: type[BaseModel]) -> Callable:
    """``endpoint`` with its ``body`` parameter typed as ``model``, from which FastAPI validates
    and documents the request body."""
    signature = inspect.signature(endpoint, eval_str=True)

    @functools.wraps(endpoint)
    def call(*args, **kwargs):
        return endpoint(*args, **kwargs)

    # inspect (and so FastAPI) takes __signature__ over the wrapped function's own.
    call.__signature__ = signature.replace(parameters=[
        p.replace(annotation=model) if p.name == "body" else p for p in signature.parameters.values()])
    return call
