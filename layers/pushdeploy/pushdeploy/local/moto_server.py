"""moto's server on loopback for the local cloud, with DynamoDB requests made atomic.

DynamoDB evaluates a condition and writes the item atomically, and pushdeploy's ledger relies on it (one
deployment in flight per service is a conditional write). moto's threaded server does not: two requests
can interleave between the check and the write. The local cloud runs handlers concurrently on purpose, so
DynamoDB requests are serialized here (they take microseconds); every other service stays concurrent,
SQS long polls included. moto's DynamoDB is made faster and leaner by `fast_moto` (a transaction backs up
the items it names, not whole tables), and what its ECR answers for an image's scan is set through
`ecr_scans` (`pushdeploy --local simulate scan`, scan on push). Otherwise this is
`moto.server.ThreadedMotoServer`, whose WSGI application it serves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from pushdeploy.local import ecr_scans, fast_moto

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _AtomicDynamoDB:
    """WSGI middleware: one DynamoDB request at a time."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            return self._app(environ, start_response)
        with self._lock:
            # Drain the answer inside the lock: the work may happen while the body is produced.
            return list(self._app(environ, start_response))


class MotoServer(ThreadedMotoServer):
    """ThreadedMotoServer serving its application behind `_AtomicDynamoDB`, quietly. `middleware`, if
    given, wraps the whole application (the local cloud watches pushes with it)."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, middleware: Callable[[WsgiApp], WsgiApp] | None = None
    ) -> None:
        super().__init__(ip_address=host, port=port, verbose=False)
        fast_moto.install()
        ecr_scans.install()
        self._middleware = middleware
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request

    def _server_entry(self) -> None:
        app: WsgiApp = ecr_scans.ScanControl(_AtomicDynamoDB(DomainDispatcherApplication(create_backend_app)))
        if self._middleware is not None:
            app = self._middleware(app)
        server: BaseWSGIServer = make_server(
            self._ip_address, self._port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._server = server
        self._server_ready_event.set()
        server.serve_forever()

    @property
    def url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"
