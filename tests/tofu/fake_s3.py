"""A tiny in-memory S3 endpoint (path-style) for the S3 backend: objects, listing, and the
conditional PUT (If-None-Match: *) that lockfile locking relies on. Authentication is recorded,
not checked."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape


class FakeS3:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.authorizations: list[str] = []
        self.requests: list[str] = []
        self.lock = threading.Lock()


def _handler(store: FakeS3) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def _target(self) -> tuple[str, str, dict[str, list[str]]]:
            url = urlsplit(self.path)
            bucket, _, key = unquote(url.path).lstrip("/").partition("/")
            return bucket, key, parse_qs(url.query)

        def _send(self, status: int, body: bytes = b"", content_type: str = "application/xml") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str) -> None:
            self._send(status, f"<Error><Code>{code}</Code><Message>{code}</Message></Error>".encode())

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _record(self) -> None:
            store.requests.append(f"{self.command} {self.path}")
            store.authorizations.append(self.headers.get("Authorization", ""))

        def do_GET(self) -> None:  # noqa: N802
            self._record()
            bucket, key, query = self._target()
            if not key:
                prefix = query.get("prefix", [""])[0]
                keys = sorted(k for b, k in store.objects if b == bucket and k.startswith(prefix))
                items = "".join(
                    f"<Contents><Key>{escape(k)}</Key><Size>{len(store.objects[(bucket, k)])}</Size></Contents>" for k in keys
                )
                body = (
                    '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>'
                    f"{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(keys)}</KeyCount>"
                    f"<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>{items}</ListBucketResult>"
                )
                return self._send(200, body.encode())
            if (bucket, key) not in store.objects:
                return self._error(404, "NoSuchKey")
            return self._send(200, store.objects[(bucket, key)], "application/octet-stream")

        do_HEAD = do_GET

        def do_PUT(self) -> None:  # noqa: N802
            self._record()
            bucket, key, _ = self._target()
            body = self._body()
            with store.lock:
                if self.headers.get("If-None-Match") == "*" and (bucket, key) in store.objects:
                    return self._error(412, "PreconditionFailed")
                store.objects[(bucket, key)] = body
            self.send_response(200)
            self.send_header("ETag", '"0"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_DELETE(self) -> None:  # noqa: N802
            self._record()
            bucket, key, _ = self._target()
            store.objects.pop((bucket, key), None)
            self._send(204)

    return Handler


@contextmanager
def serve() -> Iterator[tuple[FakeS3, str]]:
    store = FakeS3()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(store))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield store, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
