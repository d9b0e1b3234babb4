"""Property-based fuzzing of every route in the OpenAPI schema (schemathesis), against the real app.

Each generated request is checked for: no 5xx, a documented status code, a body that matches the
documented schema, and (for errors) the one error shape. Write routes are sent both as generated
(no key or a made-up one: always refused) and with the right key (writes a private index copy).
"""

from __future__ import annotations

import re
import shutil
import sys

import pytest
import schemathesis
from hypothesis import settings
from pydantic import SecretStr
from schemathesis.python.asgi import shutdown_lifespans

from api import create_app
from api.schemas import NOT_BLANK
from qa.pipeline import Pipeline
from qa.settings import Settings

pytestmark = pytest.mark.slow

API_KEY = "fuzz-writer-key"
SCHEMA_CONFIG = {"seed": 20240611, "generation": {"deterministic": True, "database": "none"}}


class _AppSlot:
    """An ASGI app that forwards to the one the `fuzz_app` fixture puts in it.

    The schema is needed at collection time (one test per operation), before fixtures exist, so it
    comes from an app whose models and index are never loaded, and requests go through this slot.
    (schemathesis.pytest.from_fixture would avoid this, but it does not work with pytest 9.2.)
    """

    app = None

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)


_SLOT = _AppSlot()
schema = schemathesis.openapi.from_dict(create_app(Settings(index_dir="unused")).openapi(),
                                        config=schemathesis.Config.from_dict(SCHEMA_CONFIG))
schema.app = _SLOT
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@schema.hook
def map_case(context, case):
    """Keeps the two rules JSON Schema cannot state out of generated bodies (each is a 422 with its
    own message): since <= until, and unique ids within one request."""
    body = case.body
    if not isinstance(body, dict):
        return case
    filters = body.get("filters")
    if isinstance(filters, dict):
        since, until = filters.get("since"), filters.get("until")
        if all(isinstance(d, str) and ISO_DATE.fullmatch(d) for d in (since, until)) and since > until:
            filters["since"], filters["until"] = until, since
    documents = body.get("documents")
    if isinstance(documents, list):
        seen = set()
        for number, document in enumerate(documents):
            if isinstance(document, dict) and isinstance(document.get("id"), str):
                if document["id"] in seen:
                    document["id"] += f"#{number}"
                seen.add(document["id"])
    return case


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory, demo_index, embedder, reader):
    """The real app over a private copy of the demo index, writes allowed with API_KEY."""
    index_dir = tmp_path_factory.mktemp("fuzz") / "index"
    shutil.copytree(demo_index.index_dir, index_dir)
    app_settings = demo_index.model_copy(update={"index_dir": index_dir, "api_key": SecretStr(API_KEY)})
    app = create_app(app_settings, Pipeline(app_settings, embedder=embedder, reader=reader))
    assert app.openapi() == schema.raw_schema
    _SLOT.app = app
    yield app
    shutdown_lifespans()  # schemathesis started the app's lifespan on the first request
    _SLOT.app = None


def _assert_error_shape(response) -> None:
    if response.status_code < 400:
        return
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"], body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


def _is_write(case) -> bool:
    # Not the coverage phase's requests with a method the operation does not have.
    return case.method.upper() == case.operation.method.upper() and "security" in case.operation.definition.raw


def test_the_not_blank_pattern_is_what_qa_strips():
    pattern = re.compile(NOT_BLANK["pattern"])
    for code in range(sys.maxunicode + 1):
        assert (pattern.fullmatch(chr(code)) is None) == chr(code).isspace(), hex(code)


@schema.parametrize()
@settings(max_examples=100, deadline=None)
def test_every_route_conforms_to_its_schema(case, fuzz_app):
    if _is_write(case):
        # As generated there is never the right key: refused whatever the body says (413 comes first,
        # from the Content-Length alone).
        unkeyed = case.call()
        assert unkeyed.status_code in (401, 413), unkeyed.text
        _assert_error_shape(unkeyed)
        response = case.call_and_validate(headers={"X-API-Key": API_KEY})
    else:
        response = case.call_and_validate()
    _assert_error_shape(response)
