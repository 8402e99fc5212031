"""A small TGI look-alike behind a bearer token, for tests of what the harness sends and keeps.

Every route refuses a request without `Authorization: Bearer <token>` (401) and records the headers
it got; /health, /info, /v1/models answer as TGI does, POST /generate_stream streams
`max_new_tokens` token events and TGI's final event. Threaded, HTTP/1.1 keep-alive."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INFO = {"model_id": "test/model", "max_input_tokens": 4000, "max_total_tokens": 4096,
        "max_concurrent_requests": 128, "version": "test"}


class AuthServer:
    def __init__(self, token: str) -> None:
        self.token = token
        self.seen: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _authorized(self) -> bool:
                outer.seen.append((self.command, self.path, dict(self.headers.items())))
                if self.headers.get("Authorization") == f"Bearer {outer.token}":
                    return True
                self._send(401, b'{"error":"unauthorized","error_type":"auth"}')
                return False

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                if not self._authorized():
                    return
                docs = {"/health": b"", "/info": json.dumps(INFO).encode(),
                        "/v1/models": json.dumps({"data": [{"id": INFO["model_id"]}]}).encode()}
                if self.path in docs:
                    self._send(200, docs[self.path])
                else:
                    self._send(404, b"")

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not self._authorized():
                    return
                if self.path != "/generate_stream":
                    self._send(404, b"")
                    return
                n = int(json.loads(body)["parameters"]["max_new_tokens"])
                events = []
                for i in range(n):
                    event = {"index": i, "token": {"id": 1, "text": " x", "logprob": 0.0, "special": False},
                             "generated_text": None, "details": None}
                    if i == n - 1:
                        event["generated_text"] = " x" * n
                        event["details"] = {"finish_reason": "length", "generated_tokens": n,
                                            "input_length": 5}
                    events.append(b"data:" + json.dumps(event).encode() + b"\n\n")
                self._send(200, b"".join(events), "text/event-stream")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
