"""A stand-in for the one-stop system that serves any bytes as a dossier: the documented API only.

Hostile dossiers come from the simulator now (services/onestop_sim/poison.py); what remains here is for a
test that needs a one-stop it can fill item by item with hand-written JSON (tests/test_versions.py). It
keeps what it was asked: sync calls per unit and the mark-synced calls per dossier.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/thainguyen/general/api/"


class StandIn:
    def __init__(self) -> None:
        self.items: dict[str, list[tuple[str, str]]] = {}  # unit -> [(key, JSON text of the item)]
        self.files: dict[str, bytes] = {}
        self.marked: Counter[str] = Counter()
        self.sync_calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.root + PREFIX

    def file_url(self, name: str, content: bytes) -> str:
        self.files[name] = content
        return f"{self.root}/files/{name}"

    def add(self, unit: str, key: str, item: dict | str) -> None:
        """`key` is what the dossier's mark will be counted under (its `mahoso` as sent)."""
        text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
        with self.lock:
            self.items.setdefault(unit, [])
            self.items[unit] = [(k, t) for k, t in self.items[unit] if k != key] + [(key, text)]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: bytes, kind: str = "application/json; charset=utf-8") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                name = self.path.removeprefix("/files/")
                if self.path.startswith("/files/") and name in standin.files:
                    self._send(200, standin.files[name], "application/pdf")
                else:
                    self._send(404, b"{}")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                call = self.path.removeprefix(PREFIX)
                if call == "dangnhap":
                    self._send(200, b'{"token": "stand-in"}')
                elif call == "dongbodulieumotcua":
                    unit = body.get("madonvi", "")
                    with standin.lock:
                        standin.sync_calls[unit] += 1
                        texts = [t for k, t in standin.items.get(unit, []) if not standin.marked[k]]
                    self._send(200, ("[" + ",".join(texts) + "]").encode("utf-8"))
                elif call == "capnhattrangthaidongbo":
                    with standin.lock:
                        for entry in body.get("dataHoso", []):
                            standin.marked[entry["mahoso"]] += 1
                    self._send(200, json.dumps({"status": 200, "message": "Cập nhật thành công"}).encode())
                else:
                    self._send(404, b'{"error": "not found", "code": "404"}')

        return Handler
