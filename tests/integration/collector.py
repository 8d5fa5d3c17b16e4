"""A Grafana Pyroscope stand-in on loopback for the shipping tests: it records every request
and answers as the test says (accept, refuse, hang, or be down altogether).

It also decodes what it receives without pyrometer's code: `protoc --decode` against the
project's proto files (the independent check), and a small protobuf wire reader for pulling
fields out of the messages."""
import gzip
import http.server
import os
import socket
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_DIR = os.path.join(ROOT, "proto")


class Request:
    def __init__(self, path, headers, body, status):
        self.path, self.headers, self.body, self.status = path, headers, body, status
        self.time = time.monotonic()


class Collector:
    """answer(request) -> (status, {header: value}, body bytes); default: 200, empty."""

    def __init__(self, tls=None):
        """tls: (certificate file, key file) to serve HTTPS with."""
        self.tls = tls
        self.requests = []  # answered, in the order of their answers
        self.received = 0   # read, whether answered yet or not
        self.lock = threading.Lock()
        self.answer = lambda req: (200, {}, b"")
        self.server = None
        self.port = None
        self.conns = set()  # open connections, closed by down() too
        self.up()

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def up(self):
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with collector.lock:
                    collector.conns.add(self.connection)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with collector.lock:
                    collector.received += 1
                req = Request(self.path, dict(self.headers), body, None)
                req.conn = self.connection  # for an answer that watches the client
                status, headers, reply = collector.answer(req)
                req.status = status
                with collector.lock:
                    collector.requests.append(req)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port or 0), Handler)
        self.server.daemon_threads = True
        if self.tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self):
        """Closes the listening socket and every open connection: connections are refused
        until up()."""
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.conns.clear()

    def accepted(self):
        with self.lock:
            return [r for r in self.requests if r.status == 200]


# ---- protobuf ----

def protoc_decode(message, proto, body):
    """Decodes with protoc: raises if the body is not a valid message of that type."""
    r = subprocess.run(["protoc", f"--proto_path={PROTO_DIR}", f"--decode={message}", proto],
                       input=body, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"protoc --decode {message} failed: {r.stderr.decode()}")
    return r.stdout.decode()


# Pyroscope's push API, field numbers as published in github.com/grafana/pyroscope
# api/push/v1/push.proto and api/types/v1/types.proto, written here independently of
# proto/push.proto (which the daemon's encoder is generated from).
PUSH_REQUEST_SERIES = 1
SERIES_LABELS, SERIES_SAMPLES = 1, 2
LABEL_NAME, LABEL_VALUE = 1, 2
SAMPLE_RAW_PROFILE, SAMPLE_ID = 1, 2


def _strict_fields(buf, allowed):
    """[(field, bytes)] of a message whose fields must all be length-delimited (wire type 2)
    and among `allowed`; the message must end exactly at a field's end."""
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        assert num in allowed and wire == 2, f"field {num} wire type {wire}"
        n, i = _varint(buf, i)
        assert i + n <= len(buf), "a field runs past its message"
        out.append((num, buf[i:i + n]))
        i += n
    return out


def push_request_checked(body):
    """Decodes a push body with the field numbers above (not with proto/push.proto) and
    checks it field by field: every field known and length-delimited, label names and
    values UTF-8, each name once per series, each sample a profile and an ID. protoc
    --decode_raw must accept the bytes too. Returns [(labels, number of samples)] per
    series."""
    r = subprocess.run(["protoc", "--decode_raw"], input=body, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"protoc --decode_raw failed: {r.stderr.decode()}")
    out = []
    for _, series in _strict_fields(body, {PUSH_REQUEST_SERIES}):
        labels, samples = {}, 0
        for n, v in _strict_fields(series, {SERIES_LABELS, SERIES_SAMPLES}):
            if n == SERIES_LABELS:
                pair = dict(_strict_fields(v, {LABEL_NAME, LABEL_VALUE}))
                name = pair[LABEL_NAME].decode()
                assert name and name not in labels, f"label {name!r} empty or twice"
                labels[name] = pair.get(LABEL_VALUE, b"").decode()
            else:
                sample = dict(_strict_fields(v, {SAMPLE_RAW_PROFILE, SAMPLE_ID}))
                assert sample[SAMPLE_RAW_PROFILE][:2] == b"\x1f\x8b", "not gzip"
                sample[SAMPLE_ID].decode()
                samples += 1
        out.append((labels, samples))
    return out


def _varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def fields(buf):
    """[(field number, value)] of one message: ints for varints, bytes for the rest."""
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        out.append((num, value))
    return out


def push_profiles(body):
    """[(labels dict, profile id, pprof bytes gzip'd)] of a PushRequest."""
    out = []
    for num, series in fields(body):
        assert num == 1
        labels, samples = {}, []
        for n, v in fields(series):
            if n == 1:
                pair = dict(fields(v))
                labels[pair[1].decode()] = pair.get(2, b"").decode()
            elif n == 2:
                sample = dict(fields(v))
                samples.append((sample.get(2, b"").decode(), sample[1]))
        for pid, raw in samples:
            out.append((labels, pid, raw))
    return out


def pprof_times(raw):
    """(time_nanos, duration_nanos) of a gzip'd pprof."""
    f = dict(fields(gzip.decompress(raw)))
    return f.get(9, 0), f.get(10, 0)
