"""The threaded HTTP server under the small stand-ins (Kubernetes, OCI, Infisical): loopback,
a port the system picks, one daemon thread per request, and a serve loop that polls often so
`stop` returns in a twentieth of a second rather than the standard library's half second."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

POLL_SECONDS = 0.05


class StandInHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", port: int = 0, *, name: str = "standin") -> None:
        super().__init__((host, port), handler)
        self.name = name
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self.server_address[0])

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start_serving(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, args=(POLL_SECONDS,), name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(5)
