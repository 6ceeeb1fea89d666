"""An S3-compatible server (moto) on loopback whose writes are atomic, as S3's are.

moto checks a conditional PUT's `If-Match` / `If-None-Match` and then writes, in two steps, on a
threaded server: two conditional PUTs racing on one key could both pass the check (moto 5.2.6,
`moto/s3/responses.py` `put_object`). AWS S3 evaluates the condition and writes atomically (one
of two concurrent conditional writes gets 412 or 409 ConditionalRequestConflict). So every
request that changes an object (PUT, POST, DELETE) runs alone here; reads stay concurrent.
"""

from __future__ import annotations

import contextlib
import os
import threading
import urllib.request
from collections.abc import Iterator

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")


class AtomicWrites:
    """WSGI middleware: one changing request at a time."""

    def __init__(self, app):
        self.app, self.lock = app, threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") in ("PUT", "POST", "DELETE"):
            with self.lock:
                # the whole response is produced under the lock (moto answers in one piece)
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


class AtomicMotoServer(ThreadedMotoServer):
    def _server_entry(self) -> None:
        app = AtomicWrites(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True,
                                   request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """Run the server on 127.0.0.1 (a free port), empty, with the AWS environment pointing at
    it (restored afterwards); yields the endpoint URL."""
    server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = {k: os.environ.get(k) for k in ENV}
    endpoint = f"http://{host}:{port}"
    # moto keeps its buckets in the process, across servers: start empty
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"),
                           timeout=30).close()
    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                      AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # cached filesystems know an earlier server
    try:
        yield endpoint
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
