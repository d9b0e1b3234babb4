"""No secret in logs: the writer key, and a wrong key a client sent, never appear in what `qa serve`
prints (stdout and stderr, at its most verbose log level), in its responses, or in the settings' repr."""

from __future__ import annotations

import http.client
import shutil
import socket

import pytest

from qa.bench.live_server import HOST, LiveServer, document_path
from qa.settings import Settings

from .conftest import DEMO_CORPUS

KEY = "Zq8vW2-writer-key-that-must-never-be-logged"
WRONG_KEY = "Jd5nX7-wrong-key-that-must-never-be-logged"
DOCUMENT = {"id": "secrets/quillon", "title": "Quillon harbour", "published": "2023-09-09",
            "text": "The Quillon harbour reopened on a Tuesday after the storm."}


def test_settings_do_not_show_the_key(monkeypatch):
    monkeypatch.setenv("QA_API_KEY", KEY)
    settings = Settings()
    assert settings.api_key.get_secret_value() == KEY
    for shown in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())):
        assert KEY not in shown


def _raw(port: int, request: bytes) -> bytes:
    """Sends bytes as they are (malformed requests http.client would refuse to send)."""
    with socket.create_connection((HOST, port), timeout=30) as sock:
        sock.sendall(request)
        return sock.recv(65536)


def _send(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.slow
def test_the_server_never_prints_a_key(demo_index, tmp_path):
    index_dir = tmp_path / "index"
    shutil.copytree(demo_index.index_dir, index_dir)
    log = tmp_path / "server.log"
    env = {"QA_API_KEY": KEY, "QA_LOG_LEVEL": "trace"}
    keyed, wrong, json_type = {"x-api-key": KEY}, {"x-api-key": WRONG_KEY}, {"content-type": "application/json"}
    seen = []  # (status, body) of every response
    with LiveServer(index_dir, DEMO_CORPUS, env=env, log=log, ready_timeout_s=180) as server:
        with_key, with_wrong_key, without_key = server.client(keyed), server.client(wrong), server.client()
        add = {"documents": [DOCUMENT]}
        expected = [
            (with_key.call("POST", "/api/documents", add), 200),
            (with_wrong_key.call("POST", "/api/documents", add), 401),
            (without_key.call("POST", "/api/documents", add), 401),
            (with_key.call("POST", "/api/documents", {"documents": [{**DOCUMENT, "published": "yesterday"}]}), 422),
            (with_key.call("POST", "/api/documents", {"documents": [], "api_key": KEY}), 422),
            (with_wrong_key.call("DELETE", document_path(DOCUMENT["id"])), 401),
            (with_key.call("DELETE", document_path(DOCUMENT["id"])), 200),
            (with_key.call("DELETE", document_path(DOCUMENT["id"])), 404),
            (with_key.call("POST", "/api/ask", {"question": "When did the Quillon harbour reopen?"}), 200),
            (with_wrong_key.call("POST", "/api/ask", {"question": ""}), 422),
            (with_key.call("GET", "/api/nowhere"), 404),
            (with_wrong_key.call("PUT", "/api/documents"), 405),
        ]
        seen += [(status, str(body)) for (status, body), _ in expected]
        assert [status for (status, _), _ in expected] == [want for _, want in expected]
        for body, headers, want in [
            (b"{not json", {**keyed, **json_type}, 422),
            (b"documents=1", {**keyed, "content-type": "application/x-www-form-urlencoded"}, 415),
            (b'{"documents": []}', {**wrong, **json_type, "content-length": "999999999"}, 413),
        ]:
            status, raw_body = _send(server.port, "POST", "/api/documents", body, headers)
            assert status == want, raw_body
            seen.append((status, raw_body.decode()))
        # Malformed HTTP that carries the key (the server's parser refuses it before the app sees it).
        for request in [f"GET /api/health HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n{WRONG_KEY}\r\n\r\n",
                        f"POST /api/documents HTTP/1.1\r\nHost: x\r\nX-API-Key {WRONG_KEY}\r\n\r\n"]:
            reply = _raw(server.port, request.encode()).decode("latin-1")
            assert reply.startswith("HTTP/1.1 400"), reply
            seen.append((400, reply))
    text = log.read_text(encoding="utf-8", errors="replace")
    # The log is as verbose as it gets (uvicorn's TRACE of ASGI messages, access lines on stdout) and
    # holds the startup banner, so a key printed anywhere would be in it.
    assert "ASGI [" in text and "serving on http://" in text
    assert '"POST /api/documents HTTP/1.1" 200' in text and '"POST /api/documents HTTP/1.1" 401' in text
    for secret in (KEY, WRONG_KEY):
        assert secret not in text
        assert not [body for _, body in seen if secret in body]
