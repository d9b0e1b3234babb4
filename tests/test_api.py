import shutil

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api import create_app
from qa.pipeline import Pipeline

QUESTION = "When did Canadian and Ukrainian negotiators hold their first session on a bilateral security agreement?"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(demo_index, demo_pipeline):
    with TestClient(create_app(demo_index, demo_pipeline)) as c:
        yield c


@pytest.fixture
def writable(tmp_path, demo_index, embedder, reader):
    """An app over a private copy of the demo index, with an API key."""
    index_dir = tmp_path / "index"
    shutil.copytree(demo_index.index_dir, index_dir)
    settings = demo_index.model_copy(update={"index_dir": index_dir, "api_key": SecretStr("s3cret")})
    pipeline = Pipeline(settings, embedder=embedder, reader=reader)
    with TestClient(create_app(settings, pipeline)) as c:
        yield c


def _error(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    return body["error"]


def test_health_ready_and_metrics(client):
    assert client.get("/api/health").json() == {"status": "ok"}
    ready = client.get("/api/ready").json()
    assert ready["status"] == "ready" and ready["documents"] >= 12
    client.post("/api/ask", json={"question": QUESTION})
    metrics = client.get("/metrics").text
    assert 'qa_http_requests_total{method="POST",route="/api/ask",status="200"}' in metrics
    assert "qa_http_request_seconds_bucket" in metrics and "qa_answers_total" in metrics
    assert "qa_index_documents" in metrics


def test_ask_returns_a_cited_answer(client):
    response = client.post("/api/ask", json={"question": QUESTION, "top_k": 3})
    assert response.status_code == 200
    answer = response.json()
    assert not answer["abstained"] and "25" in answer["text"]
    assert len(answer["passages"]) == 3
    for citation in answer["citations"]:
        doc = client.get(f"/api/documents/{citation['doc_id']}").json()
        assert doc["text"][citation["start"]:citation["end"]] == citation["quote"]
        assert doc["text"][citation["sentence_start"]:citation["sentence_end"]] == citation["sentence"]


def test_ask_with_filters(client):
    answer = client.post("/api/ask", json={"question": QUESTION, "filters": {
        "sources": ["no such outlet"]}}).json()
    assert answer["abstained"] and answer["passages"] == []
    answer = client.post("/api/ask", json={"question": QUESTION, "filters": {
        "since": "2023-08-20", "until": "2023-08-31"}}).json()
    assert all("2023-08-20" <= p["published"] <= "2023-08-31" for p in answer["passages"])


@pytest.mark.parametrize("body,status,code", [
    ({"question": ""}, 422, "invalid_input"),
    ({"question": "   "}, 422, "invalid_input"),
    ({"question": "x" * 5000}, 422, "invalid_input"),
    ({"question": "ok?", "top_k": 0}, 422, "invalid_input"),
    ({"question": "ok?", "top_k": 1000}, 422, "invalid_input"),
    ({"question": "ok?", "filters": {"since": "2023-09-01", "until": "2023-01-01"}}, 422, "invalid_input"),
    ({"question": "ok?", "filters": {"since": "last week"}}, 422, "invalid_input"),
    ({"question": "ok?", "filters": {"colour": "red"}}, 422, "invalid_input"),
    ({"question": 42}, 422, "invalid_input"),
    ({}, 422, "invalid_input"),
])
def test_bad_ask_requests_get_4xx(client, body, status, code):
    assert _error(client.post("/api/ask", json=body), status)["code"] == code


def test_malformed_bodies_and_methods(client):
    _error(client.post("/api/ask", content=b"{not json", headers={"content-type": "application/json"}), 422)
    assert _error(client.post("/api/ask", content=b"question=hi",
                              headers={"content-type": "application/x-www-form-urlencoded"}), 415)["code"] \
        == "unsupported_media_type"
    big = b'{"question": "' + b"a" * 6_000_000 + b'"}'
    assert _error(client.post("/api/ask", content=big, headers={"content-type": "application/json"}),
                  413)["code"] == "body_too_large"
    _error(client.get("/api/ask"), 405)
    _error(client.get("/api/nothing-here"), 404)


def test_documents_listing_and_lookup(client):
    page = client.get("/api/documents", params={"limit": 5}).json()
    assert page["total"] >= 12 and len(page["documents"]) == 5
    second = client.get("/api/documents", params={"limit": 5, "offset": 5}).json()
    assert not {d["id"] for d in page["documents"]} & {d["id"] for d in second["documents"]}
    dated = client.get("/api/documents", params={"since": "2023-08-01", "until": "2023-08-31"}).json()
    assert dated["total"] and all("2023-08" in d["published"] for d in dated["documents"])
    doc_id = page["documents"][0]["id"]
    doc = client.get(f"/api/documents/{doc_id}").json()
    assert doc["id"] == doc_id and doc["text"]
    assert _error(client.get("/api/documents/no-such-doc"), 404)["code"] == "unknown_document"
    _error(client.get("/api/documents/..%2F..%2Fetc%2Fpasswd"), 404)
    _error(client.get("/api/documents", params={"since": "yesterday"}), 422)
    _error(client.get("/api/documents", params={"limit": 0}), 422)


def test_security_headers(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert "access-control-allow-origin" not in client.options(
        "/api/ask", headers={"origin": "http://evil.example", "access-control-request-method": "POST"}).headers


def test_writes_need_the_key_and_are_visible_to_readers(writable):
    doc = {"id": "api/zorblax", "title": "Zorblax accord", "source": "Test Wire", "published": "2023-09-09",
           "text": "The Zorblax accord was signed in the town of Quillon on a rainy morning."}
    _error(writable.post("/api/documents", json={"documents": [doc]}), 401)
    _error(writable.post("/api/documents", json={"documents": [doc]}, headers={"x-api-key": "wrong"}), 401)
    result = writable.post("/api/documents", json={"documents": [doc]}, headers={"x-api-key": "s3cret"})
    assert result.status_code == 200 and result.json()["added"] == 1
    answer = writable.post("/api/ask", json={"question": "Where was the Zorblax accord signed?"}).json()
    assert answer["text"] and "Quillon" in answer["text"]
    assert answer["citations"][0]["doc_id"] == "api/zorblax"
    bad = {**doc, "id": "bad", "text": "   "}
    assert "documents[0]" in _error(writable.post("/api/documents", json={"documents": [bad]},
                                                  headers={"x-api-key": "s3cret"}), 422)["message"]
    _error(writable.delete("/api/documents/api/zorblax"), 401)
    gone = writable.delete("/api/documents/api/zorblax", headers={"x-api-key": "s3cret"})
    assert gone.status_code == 200 and gone.json()["removed"] == 1
    _error(writable.get("/api/documents/api/zorblax"), 404)
    _error(writable.delete("/api/documents/api/zorblax", headers={"x-api-key": "s3cret"}), 404)


def test_read_only_server_refuses_writes(demo_index, demo_pipeline):
    settings = demo_index.model_copy(update={"read_only": True})
    with TestClient(create_app(settings, demo_pipeline)) as c:
        doc = {"id": "x", "text": "some text"}
        assert _error(c.post("/api/documents", json={"documents": [doc]}), 403)["code"] == "forbidden"


def test_openapi_schema_lists_the_routes(client):
    schema = client.get("/openapi.json").json()
    assert {"/api/ask", "/api/documents", "/api/documents/{doc_id}", "/api/health", "/api/ready"} <= set(schema["paths"])


def test_api_docs_work_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200


def test_each_app_states_and_enforces_its_own_body_limits(settings, embedder):
    tight = create_app(settings.model_copy(update={"max_question_chars": 20, "max_documents_per_request": 2}),
                       Pipeline(settings, embedder=embedder))
    loose = create_app(settings, Pipeline(settings, embedder=embedder))
    for app, chars, documents in ((tight, 20, 2), (loose, settings.max_question_chars,
                                                   settings.max_documents_per_request)):
        schemas = app.openapi()["components"]["schemas"]
        assert schemas["AskRequest"]["properties"]["question"]["maxLength"] == chars
        assert schemas["DocumentsIn"]["properties"]["documents"]["maxItems"] == documents
    question = {"question": "Who signed the accord in Quillon?"}  # over 20 characters
    assert "at most 20" in _error(TestClient(tight).post("/api/ask", json=question), 422)["message"]
    assert _error(TestClient(loose).post("/api/ask", json=question), 503)["code"] == "index_missing"
