"""Receive what teleport-event-handler sends to Fluentd and spool it durably as JSON lines.

The handler POSTs one event per request (`Content-Type: application/json`, optional mTLS) and
retries until it gets 200, so it delivers at least once. This server answers 200 only after
the event is appended to the spool *and* fsync'ed; a body that is not a JSON object (or an
array of objects) gets 400 with the reason; a spool that cannot be written gets 503 (retried).

Spool folder: `events-<UTC stamp>-<seq>.jsonl.part` is the file being appended (one per
receiver, rotated by size and age); closing renames it to `events-….jsonl`, which
`pipeline.ingest.drain.drain_spool` ingests and then moves to `archive/`. Dedup by `uid` in the store turns the
handler's at-least-once into exactly-once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pipeline.sources import SourceError
from pipeline.sources.spool import Spool, closed_files

__all__ = ["BadEvent", "Receiver", "ReceiverError", "Spool", "TLSConfig", "closed_files",
           "event_lines"]
log = logging.getLogger(__name__)
MAX_BODY = 8 * 1024 * 1024


# GET /metrics: the request's Accept header -> (body, Content-Type); made by the caller (the
# CLI), so that this module knows nothing of the store or of Prometheus
Metrics = Callable[[str], tuple[bytes, str]]


class ReceiverError(SourceError):
    """The receiver cannot start (address in use, bad TLS files)."""


class BadEvent(ValueError):
    """A request body that is not one JSON event; the message is sent back with the 400."""


def event_lines(body: bytes) -> list[bytes]:
    """The spool lines of one request body: a JSON object (kept byte for byte when it is on one
    line), or an array of objects (Fluentd's batch form), each re-encoded on one line."""
    text = body.strip()
    if not text:
        raise BadEvent("empty body: expected one JSON event")
    try:
        doc = json.loads(text.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise BadEvent(f"body is not UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise BadEvent(f"body is not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if isinstance(doc, dict):
        if b"\n" not in text and b"\r" not in text:
            return [text]
        return [_compact(doc)]
    if not isinstance(doc, list):
        raise BadEvent(f"expected a JSON object (one event) or an array of objects, got "
                       f"{_json_type(doc)}")
    if not doc:
        raise BadEvent("empty array: expected at least one event")
    for i, d in enumerate(doc):
        if not isinstance(d, dict):
            raise BadEvent(f"array element {i} is {_json_type(d)}, expected an object")
    return [_compact(d) for d in doc]


def _compact(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _json_type(v) -> str:
    names = {str: "a string", bool: "a boolean", int: "a number", float: "a number",
             list: "an array", dict: "an object"}
    return "null" if v is None else names.get(type(v), type(v).__name__)


@dataclass(frozen=True)
class TLSConfig:
    """Server certificate and key (PEM); with `client_ca`, clients must present a certificate
    signed by it (mTLS, as the event handler's `fluentd-cert`/`fluentd-key` do)."""

    cert: str
    key: str
    client_ca: str | None = None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(["http/1.1"])  # the handler's Go client falls back from h2
        try:
            ctx.load_cert_chain(self.cert, self.key)
            if self.client_ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(self.client_ca)
        except (OSError, ssl.SSLError) as e:
            raise ReceiverError(f"cannot load TLS files ({self.cert}, {self.key}, "
                                f"{self.client_ca}): {e}") from None
        return ctx


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "discovery-history-receiver"
    timeout = 120  # idle keep-alive connections are dropped after this
    server: _Server

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/metrics" and self.server.metrics is not None:
            return self._metrics()
        self._reply(200 if path == "/healthz" else 404, "ok" if path == "/healthz" else "")
        return None

    def _metrics(self) -> None:
        """The exposition the `metrics` callable makes for this Accept header; 503 with one line
        when it fails (the scrape shows `up` 0, the receiver keeps receiving)."""
        try:
            body, content_type = self.server.metrics(self.headers.get("Accept", ""))
        except Exception as e:  # any failure of the store's side must not stop the receiver
            log.error("metrics failed: %s", e)
            return self._reply(503, f"metrics unavailable: {e}")
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.server.stopping:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)
        return None

    def do_POST(self) -> None:  # noqa: N802
        if self.headers.get("Content-Encoding", "identity") != "identity":
            return self._reply(415, "Content-Encoding is not supported", close=True)
        body = self._body()
        if body is None:
            return None
        try:
            lines = event_lines(body)
        except BadEvent as e:
            return self._reply(400, str(e))
        try:
            self.server.spool.append(b"".join(line + b"\n" for line in lines))
        except OSError as e:
            log.error("spool write failed: %s", e)
            return self._reply(503, "spool unavailable; retry")
        self.server.on_durable(len(lines))
        return self._reply(200, "")

    def _body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while (size := int(self.rfile.readline(64).split(b";")[0].strip() or b"0", 16)) > 0:
                total += size
                if total > MAX_BODY:
                    return self._reply(413, f"body larger than {MAX_BODY} bytes", close=True)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
            while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            return self._reply(411, "Content-Length required", close=True)
        if int(length) > MAX_BODY:
            return self._reply(413, f"body larger than {MAX_BODY} bytes", close=True)
        data = self.rfile.read(int(length))
        if len(data) < int(length):
            self.close_connection = True
            return None  # client went away: no answer, it retries
        return data

    def _reply(self, code: int, text: str, close: bool = False) -> None:
        """Answer; `close` when the body was not read (the connection cannot be reused)."""
        payload = (text + "\n").encode() if text else b""
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        if close or self.server.stopping:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)
        return None

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        log.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for in-flight requests
    block_on_close = True

    def __init__(self, address, spool: Spool, tls: ssl.SSLContext | None, on_durable,
                 metrics: Metrics | None = None):
        self.spool, self.tls, self.on_durable, self.metrics = spool, tls, on_durable, metrics
        self.stopping, self._conns, self._conns_lock = False, set(), threading.Lock()
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls is None:
            return sock, addr
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._conns_lock:
            (self._conns.add if alive else self._conns.discard)(conn)
            if alive and self.stopping:
                _stop_reading(conn)

    def drop_idle(self) -> None:
        """Stop reading every connection: idle keep-alives end, requests in flight finish."""
        with self._conns_lock:
            self.stopping = True
            for conn in self._conns:
                _stop_reading(conn)

    def handle_error(self, request, client_address) -> None:
        log.info("connection from %s failed", client_address[0], exc_info=log.isEnabledFor(logging.DEBUG))


def _stop_reading(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        socket.socket.shutdown(conn, socket.SHUT_RD)  # not SSLSocket.shutdown: keep writing


class Receiver:
    """The HTTP(S) server, its spool and the rotation timer; `start()`, then `stop()`. With
    `metrics`, GET /metrics answers what it returns for the request's Accept header."""

    def __init__(self, spool: Spool, listen: tuple[str, int], tls: TLSConfig | None = None, *,
                 on_durable: Callable[[int], None] = lambda n: None,
                 metrics: Metrics | None = None):
        self.spool = spool
        self.received = 0
        self._hook, self._count_lock = on_durable, threading.Lock()
        try:
            ctx = tls.context() if tls else None
            self._server = _Server(listen, spool, ctx, self._durable, metrics)
        except OSError as e:
            spool.close()
            raise ReceiverError(f"cannot listen on {listen[0]}:{listen[1]}: {e.strerror or e}") from None
        except BaseException:
            spool.close()
            raise
        self.scheme = "https" if tls else "http"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _durable(self, n: int) -> None:
        with self._count_lock:
            self.received += n
        self._hook(n)

    @property
    def address(self) -> tuple[str, int]:
        return self._server.server_address[:2]

    def start(self) -> Receiver:
        self._threads = [threading.Thread(target=self._server.serve_forever, args=(0.1,),
                                          name="receiver"),
                         threading.Thread(target=self._rotate, name="spool-rotation")]
        for t in self._threads:
            t.start()
        return self

    def _rotate(self) -> None:
        while not self._stop.wait(max(min(self.spool.max_age / 4, 1.0), 0.01)):
            self.spool.rotate_if_due()

    def stop(self) -> None:
        """Graceful: stop accepting, finish requests in flight, close the spool file."""
        self._server.shutdown()
        self._server.drop_idle()
        self._server.server_close()
        self._stop.set()
        for t in self._threads:
            t.join()
        self.spool.close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
