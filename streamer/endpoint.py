"""The driver's HTTP endpoint: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

Both probes answer 200 with ``ok`` or 503 with the reason, as Kubernetes expects:

* ``/healthz`` (liveness): the process serves, and the query has not died with an error.
* ``/readyz`` (readiness): the model is resolved, the query runs, its first micro-batch has
  completed, and a progress or idle event arrived recently (see
  :meth:`streamer.service.Service.readiness`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streamer.errors import StreamerError

log = logging.getLogger(__name__)

Probe = Callable[[], tuple[bool, str]]


class Endpoint:
    """A small threaded HTTP server; ``start()`` binds, ``stop()`` closes."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, health: Probe, ready: Probe
    ) -> None:
        self.host = host
        self.port = port
        self.registry = registry
        self.health = health
        self.ready = ready
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Endpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(endpoint.registry), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/readyz"):
                    probe = endpoint.health if path == "/healthz" else endpoint.ready
                    try:
                        ok, reason = probe()
                    except Exception as exc:
                        ok, reason = False, f"probe failed: {exc}"
                    self._send(200 if ok else 503, f"{reason}\n".encode(), "text/plain")
                else:
                    self._send(404, b"try /metrics, /healthz or /readyz\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        try:
            self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as exc:
            raise StreamerError(
                f"cannot serve metrics on {self.host}:{self.port} ({exc.strerror}); set "
                "metrics.port to a free port, or 0 to disable the endpoint"
            ) from exc
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="streamer-endpoint", daemon=True
        )
        self._thread.start()
        log.info('metrics endpoint listening url="http://%s:%d/metrics"', self.host, self.port)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
