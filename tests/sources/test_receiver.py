"""The event-handler receiver over real loopback HTTP(S): what is acknowledged is on disk, mTLS,
restarts, crashes before the ack, duplicates, a bounded 10k-event load; then the spool drained
into a real store exactly once."""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipeline.ingest.drain import drain_spool
from pipeline.sources.receiver import BadEvent, Receiver, ReceiverError, TLSConfig, event_lines
from pipeline.sources.spool import Spool, SpoolError, closed_files
from tests.conftest import T0, make_run

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- helpers


def events(n: int, prefix: str = "i") -> list[dict]:
    return [make_run(f"{prefix}-{k:05d}", at=T0 + timedelta(seconds=k)) for k in range(n)]


@contextmanager
def running(spool_dir: Path, tls: TLSConfig | None = None, **spool_options):
    r = Receiver(Spool(spool_dir, **spool_options), ("127.0.0.1", 0), tls).start()
    try:
        yield r
    finally:
        r.stop()


class Client:
    """One keep-alive connection, as the handler's Go client keeps them."""

    def __init__(self, r_or_port, context: ssl.SSLContext | None = None, timeout: float = 10):
        port = r_or_port if isinstance(r_or_port, int) else r_or_port.address[1]
        self.conn = (http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=timeout)
                     if context else http.client.HTTPConnection("127.0.0.1", port, timeout=timeout))

    def post(self, body, path: str = "/test.log", headers=(), **kw) -> tuple[int, str]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        self.conn.request("POST", path, data, {"Content-Type": "application/json", **dict(headers)},
                          **kw)
        resp = self.conn.getresponse()
        return resp.status, resp.read().decode()

    def close(self) -> None:
        self.conn.close()


def spooled(spool_dir: Path) -> list[dict]:
    """Every line in the spool (open, closed and archived files), parsed."""
    files = sorted(spool_dir.glob("events-*")) + sorted((spool_dir / "archive").glob("events-*"))
    return [json.loads(line) for f in files for line in f.read_bytes().splitlines()]


# --------------------------------------------------------------------------- request bodies


@pytest.mark.parametrize(
    ("body", "want"),
    [
        pytest.param(b'{"uid":"a", "event":"ssm.run"}\n', [b'{"uid":"a", "event":"ssm.run"}'],
                     id="object-kept-byte-for-byte"),
        pytest.param(b'{\n  "uid": "a"\n}', [b'{"uid":"a"}'], id="pretty-printed-made-one-line"),
        pytest.param(b'[{"uid":"a"},{"uid":"b"}]', [b'{"uid":"a"}', b'{"uid":"b"}'], id="array"),
        pytest.param('{"s":"é"}'.encode(), ['{"s":"é"}'.encode()], id="utf8"),
    ],
)
def test_event_lines(body, want) -> None:
    assert event_lines(body) == want


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"  ", "empty body", id="empty"),
        pytest.param(b"\xff{}", "not UTF-8", id="not-utf8"),
        pytest.param(b'{"uid":', "not JSON", id="truncated"),
        pytest.param(b'"x"', "got a string", id="string"),
        pytest.param(b"null", "got null", id="null"),
        pytest.param(b"[]", "empty array", id="empty-array"),
        pytest.param(b'[{"a":1}, 2]', "array element 1 is a number", id="array-of-mixed"),
    ],
)
def test_event_lines_rejects(body, reason) -> None:
    with pytest.raises(BadEvent, match=reason):
        event_lines(body)


# --------------------------------------------------------------------------- spool


class FakeMono:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_spool_rotates_by_size_and_age(tmp_path: Path) -> None:
    mono = FakeMono()
    spool = Spool(tmp_path, max_bytes=100, max_age=60, monotonic=mono)
    for k in range(5):
        spool.append(b'{"n":%d,"pad":"%s"}\n' % (k, b"x" * 30))  # 2 lines fit in 100 bytes
    assert len(closed_files(tmp_path)) == 2
    assert not spool.rotate_if_due()
    mono.t = 61
    assert spool.rotate_if_due()
    spool.close()
    names = [p.name for p in closed_files(tmp_path)]
    assert len(names) == 3 and not list(tmp_path.glob("*.part"))
    assert [int(n.split("-")[2][:6]) for n in names] == [1, 2, 3]
    assert [d["n"] for d in spooled(tmp_path)] == [0, 1, 2, 3, 4]


def test_spool_recovers_a_crashed_receivers_file_without_its_torn_line(tmp_path: Path) -> None:
    part = tmp_path / "events-20260504T100000Z-000007.jsonl.part"
    part.write_bytes(b'{"n":1}\n{"n":2}\n{"n":')
    (tmp_path / "events-20260504T100001Z-000008.jsonl.part").write_bytes(b'{"torn')
    spool = Spool(tmp_path)
    spool.append(b'{"n":3}\n')
    spool.close()
    files = closed_files(tmp_path)
    assert [f.name for f in files][0] == "events-20260504T100000Z-000007.jsonl"
    assert files[1].name.endswith("-000009.jsonl")  # numbering goes on after the leftovers
    assert [d["n"] for d in spooled(tmp_path)] == [1, 2, 3]


def test_one_receiver_per_spool_folder(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    with pytest.raises(SpoolError, match="in use by another receiver"):
        Spool(tmp_path)
    first.close()
    Spool(tmp_path).close()


def test_concurrent_appends_are_all_durable_lines(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=4096)
    def work(t):
        for k in range(200):
            spool.append(json.dumps({"t": t, "k": k}).encode() + b"\n")
    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spool.close()
    got = sorted((d["t"], d["k"]) for d in spooled(tmp_path))
    assert got == [(t, k) for t in range(4) for k in range(200)]


# --------------------------------------------------------------------------- HTTP


def test_acknowledged_events_are_already_in_the_spool(tmp_path: Path) -> None:
    with running(tmp_path) as r:
        c = Client(r)
        for ev in events(3):
            assert c.post(ev) == (200, "")
            assert spooled(tmp_path)[-1] == ev  # written before the 200 was sent
        assert c.post(json.dumps(events(2, "batch")).encode()) == (200, "")
        c.close()
        assert r.received == 5
    assert len(closed_files(tmp_path)) == 1 and len(spooled(tmp_path)) == 5


def test_bad_requests_get_a_reason_and_nothing_is_spooled(tmp_path: Path) -> None:
    with running(tmp_path) as r:
        c = Client(r)
        status, reason = c.post(b"not json")
        assert (status, reason) == (400, "body is not JSON (Expecting value at line 1 column 1)\n")
        assert c.post(b"[1]")[0] == 400
        assert c.post(events(1)[0], headers={"Content-Encoding": "gzip"})[0] == 415
        c = Client(r)
        c.conn.request("GET", "/healthz")
        resp = c.conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"ok\n")
        with socket.create_connection(r.address, timeout=5) as s:  # no Content-Length
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 411")
    assert spooled(tmp_path) == []


def test_chunked_body_is_accepted(tmp_path: Path) -> None:
    (ev,) = events(1)
    data = json.dumps(ev).encode()
    with running(tmp_path) as r:
        c = Client(r)
        assert c.post(iter([data[:10], data[10:]]), encode_chunked=True) == (200, "")
    assert spooled(tmp_path) == [ev]


def test_restart_between_sends_then_drain_stores_everything(tmp_path: Path, store) -> None:
    spool, evs = tmp_path / "spool", events(10)
    for batch in (evs[:5], evs[5:]):
        with running(spool) as r:
            c = Client(r)
            assert all(c.post(ev) == (200, "") for ev in batch)
            c.close()
    summary = drain_spool(store, spool)
    assert (summary.read, summary.stored, summary.runs) == (10, 10, 10)
    assert closed_files(spool) == [] and len(list((spool / "archive").iterdir())) == 2
    assert drain_spool(store, spool) is None


def test_duplicates_resent_are_stored_once(tmp_path: Path, store) -> None:
    spool, evs = tmp_path / "spool", events(20)
    with running(spool) as r:
        c = Client(r)
        for ev in evs + evs[:15]:  # the handler re-sends after a restart of its own
            assert c.post(ev)[0] == 200
    first = drain_spool(store, spool)
    assert (first.stored, first.duplicates) == (20, 15)
    with running(spool) as r:
        assert Client(r).post(evs[3])[0] == 200
    again = drain_spool(store, spool)
    assert (again.stored, again.duplicates) == (0, 1)


def test_drain_takes_only_closed_files(tmp_path: Path, store) -> None:
    spool = tmp_path / "spool"
    mono = FakeMono()
    with running(spool, monotonic=mono, max_age=3600) as r:
        c = Client(r)
        assert c.post(events(1)[0])[0] == 200
        assert drain_spool(store, spool) is None  # the open file is not touched
        mono.t = 3600
        deadline = time.monotonic() + 300
        while not closed_files(spool) and time.monotonic() < deadline:
            time.sleep(0.05)  # the rotation timer closes the aged file
        assert drain_spool(store, spool).stored == 1
        assert c.post(events(2)[1])[0] == 200
    assert drain_spool(store, spool).stored == 1


def test_shutdown_does_not_wait_for_idle_keepalive_connections(tmp_path: Path) -> None:
    r = Receiver(Spool(tmp_path), ("127.0.0.1", 0)).start()
    c = Client(r)
    assert c.post(events(1)[0])[0] == 200  # connection stays open, idle
    started = time.monotonic()
    r.stop()
    assert time.monotonic() - started < 120  # did not wait for the idle connection to close
    assert len(closed_files(tmp_path)) == 1


def test_address_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with running(tmp_path / "a") as r, pytest.raises(ReceiverError, match="cannot listen"):
        Receiver(Spool(tmp_path / "b"), r.address)
    Spool(tmp_path / "b").close()  # the failed receiver released its spool


# --------------------------------------------------------------------------- mTLS


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer, issuer_key, *, ca=False, usage=None, san=None):
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             issuer_key.public_key()), False))
    if ca:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                          False), critical=True)
    if usage:
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, name: str, cert, key) -> tuple[str, str]:
    crt, pem = folder / f"{name}.crt", folder / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return str(crt), str(pem)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, tuple[str, str]]:
    """A CA, a server and a client certificate from it, and a client from a rogue CA."""
    d = tmp_path_factory.mktemp("pki")
    out = {}
    for ca_name, leaves in (("ca", ("server", "client")), ("rogue-ca", ("rogue-client",))):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        out[ca_name] = _write(d, ca_name, _cert(ca_name, ca_key, ca_name, ca_key, ca=True), ca_key)
        for leaf in leaves:
            key = ec.generate_private_key(ec.SECP256R1())
            server = leaf == "server"
            cert = _cert(leaf, key, ca_name, ca_key,
                         usage=ExtendedKeyUsageOID.SERVER_AUTH if server else
                         ExtendedKeyUsageOID.CLIENT_AUTH,
                         san=[x509.DNSName("localhost"),
                              x509.IPAddress(ipaddress.ip_address("127.0.0.1"))] if server else None)
            out[leaf] = _write(d, leaf, cert, key)
    return out


def client_context(pki, cert: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki["ca"][0])
    if cert:
        ctx.load_cert_chain(*pki[cert])
    return ctx


def test_mtls_accepts_only_clients_signed_by_the_ca(tmp_path: Path, pki) -> None:
    tls = TLSConfig(*pki["server"], client_ca=pki["ca"][0])
    with running(tmp_path, tls) as r:
        assert r.scheme == "https"
        good = Client(r, client_context(pki, "client"))
        assert good.post(events(1)[0]) == (200, "")
        for cert in (None, "rogue-client"):
            bad = Client(r, client_context(pki, cert))
            with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
                bad.post(events(2)[1])
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            Client(r).post(events(2)[1])  # plain HTTP to the TLS port
        assert good.post(events(3)[2]) == (200, "")  # the server is still fine
    assert [e["instance_id"] for e in spooled(tmp_path)] == ["i-00000", "i-00002"]


def test_tls_without_client_ca_needs_no_client_certificate(tmp_path: Path, pki) -> None:
    with running(tmp_path, TLSConfig(*pki["server"])) as r:
        assert Client(r, client_context(pki, None)).post(events(1)[0]) == (200, "")


def test_unreadable_tls_files_are_a_clear_error(tmp_path: Path, pki) -> None:
    with pytest.raises(ReceiverError, match="cannot load TLS files"):
        Receiver(Spool(tmp_path), ("127.0.0.1", 0), TLSConfig(pki["server"][0], "/nonexistent"))


# --------------------------------------------------------------------------- real processes

CRASHING_RECEIVER = """
import os, signal, sys, threading
from pipeline.sources.receiver import Receiver
from pipeline.sources.spool import Spool
spool, port, crash_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seen = 0
def hook(n):
    global seen
    seen += n
    if seen == crash_at:
        os._exit(17)  # the event is on disk, the 200 is never sent
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
r = Receiver(Spool(spool), ("127.0.0.1", port), on_durable=hook).start()
print("ready", flush=True)
stop.wait()
r.stop()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(script: Path, *args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_crash_before_ack_then_client_retry_loses_nothing(tmp_path: Path, store) -> None:
    script = tmp_path / "receiver.py"
    script.write_text(CRASHING_RECEIVER)
    spool, port, evs = tmp_path / "spool", _free_port(), events(8)
    proc = _start(script, spool, port, 4)
    restarts = 0
    for ev in evs:  # the handler's loop: retry each event until it gets a 200
        for _ in range(3):
            try:
                if Client(port).post(ev)[0] == 200:
                    break
            except (ConnectionError, http.client.HTTPException):
                assert proc.wait(timeout=10) == 17
                proc, restarts = _start(script, spool, port, 0), restarts + 1
        else:
            pytest.fail(f"event {ev['uid']} never acknowledged")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert restarts == 1
    assert [e["uid"] for e in spooled(spool)].count(evs[3]["uid"]) == 2  # spooled, then re-sent
    summary = drain_spool(store, spool)
    assert (summary.read, summary.stored, summary.duplicates) == (9, 8, 1)


def test_cli_receiver_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    code = "from pipeline.cli.receive import receive_cmd; receive_cmd()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--listen", "127.0.0.1:0", "--spool", str(spool)],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()
    assert first.startswith("discovery-history: receiving on http://127.0.0.1:")
    port = int(first.split(":")[3].split(",")[0])
    c = Client(port)
    assert all(c.post(ev)[0] == 200 for ev in events(3))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert "stopped after 3 events" in proc.stderr.read()
    assert len(closed_files(spool)) == 1 and not list(spool.glob("*.part"))


# --------------------------------------------------------------------------- load


def test_ten_thousand_events_bounded_load(tmp_path: Path, store) -> None:
    """10k events from 4 keep-alive clients over loopback; bounded in count and in time."""
    spool, n_threads, per_thread, budget = tmp_path / "spool", 4, 2500, 120.0
    evs = events(n_threads * per_thread)
    failures: list[str] = []
    with running(spool, max_bytes=512 * 1024) as r:
        deadline = time.monotonic() + budget

        def send(chunk: list[dict]) -> None:
            c = Client(r)
            for ev in chunk:
                if time.monotonic() > deadline:
                    failures.append("deadline")
                    return
                status, _ = c.post(ev)
                if status != 200:
                    failures.append(str(status))
            c.close()

        started = time.monotonic()
        threads = [threading.Thread(target=send, args=(evs[k::n_threads],))
                   for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=budget + 10)
        elapsed = time.monotonic() - started
        assert not failures and r.received == 10_000, (failures[:5], r.received)
    assert len(closed_files(spool)) > 5  # rotated by size
    summary = drain_spool(store, spool)
    assert (summary.read, summary.stored, summary.quarantined) == (10_000, 10_000, 0)
    print(f"10k events in {elapsed:.1f}s ({10_000 / elapsed:.0f}/s)")
