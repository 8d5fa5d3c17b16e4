"""pyrometer run shipping profiles: the local store, and Grafana Pyroscope push/ingest against
a loopback collector (tests/integration/collector.py) that can refuse, hang or be down.

Every body is checked by protoc against the project's protos and every pprof by
`go tool pprof`. Delivery is checked by time ranges: each service's profiles must tile time
without gaps or repeats."""
import base64
import gzip
import os
import re
import select
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid

import pytest

from collector import Collector, pprof_times, protoc_decode, push_profiles, push_request_checked
from conftest import PYROMETER, ZOO, wait_for, workload_script
from daemon import Daemon as _Daemon
from daemon import cpu_profiles
from pprof_raw import RawProfile, pprof_top


def Daemon(tmp_path, *args, **kw):
    """The daemon with off-CPU profiles off: these tests count deliveries, one profile per
    service and interval (tests/integration/test_wall.py ships off-CPU profiles)."""
    return _Daemon(tmp_path, "--off-cpu", "false", *args, **kw)


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.down()


@pytest.fixture
def busy(workload):
    """A CPU-bound workload under a service name of its own; yields (workload, service)."""
    service = f"shiptest-{uuid.uuid4().hex[:8]}"
    w = workload(ZOO["py311"], workload_script("cpu_split.py"), ["600"],
                 env={"PYROMETER_SERVICE": service})
    return w, service


def spool_files(d):
    return sorted(f for f in os.listdir(d.spool) if f.endswith(".spool")) \
        if os.path.isdir(d.spool) else []


def spooled_of(d, service):
    """The spool files holding a profile of service: a spool file's labels follow its
    76-byte header as NUL-separated names and values (agent/delivery/spool.c)."""
    mine = []
    for f in spool_files(d):
        try:
            raw = open(os.path.join(d.spool, f), "rb").read()
        except FileNotFoundError:  # delivered meanwhile
            continue
        labels = raw[76:76 + int.from_bytes(raw[12:16], "little")].split(b"\0")
        if dict(zip(labels[0::2], labels[1::2])).get(b"service_name") == service.encode():
            mine.append(f)
    return mine


def profiles_of(collector, service):
    """(time_nanos, duration_nanos, id, pprof) of the service's accepted push profiles."""
    out = []
    for req in collector.accepted():
        for labels, pid, raw in push_profiles(req.body):
            if labels.get("service_name") == service:
                t, dur = pprof_times(raw)
                out.append((t, dur, pid, raw))
    return sorted(out)


def assert_tiles_time(profiles):
    """Consecutive intervals: each starts where the previous ended; none repeats."""
    starts = [t for t, _, _, _ in profiles]
    assert len(starts) == len(set(starts)), f"a profile arrived twice: {starts}"
    for (t0, d0, _, _), (t1, _, _, _) in zip(profiles, profiles[1:]):
        assert t0 + d0 == t1, f"gap or overlap between intervals at {t0 + d0} and {t1}"


def wait_stored(d, n, timeout=30, each=None, every=0.2):
    """Waits until the daemon has written n profiles to its store, calling each() at every
    look; returns how many."""
    end = time.monotonic() + timeout
    while (d.metric('pyrometer_exports_total{sink="store",result="written"}') or 0) < n:
        assert time.monotonic() < end, d.log()
        if each:
            each()
        time.sleep(every)
    return d.metric('pyrometer_exports_total{sink="store",result="written"}')


def stored_spans(store):
    """(from, until) in ms of the CPU profiles in the store, sorted."""
    return sorted(tuple(map(int, f.name[:-len(".pb.gz")].split("-")))
                  for f in cpu_profiles(store.rglob("*.pb.gz")))


def check_pprof(raw, tmp_path, top_candidates=("spin",)):  # cpu_split.py burns in spin()
    path = tmp_path / f"p-{uuid.uuid4().hex[:6]}.pb.gz"
    path.write_bytes(raw)
    RawProfile(str(path))  # go tool pprof -raw reads it
    top = pprof_top(str(path))
    assert top in top_candidates, f"top function {top!r}"


def test_push_bodies_decode_and_carry_the_workload(tmp_path, collector, busy):
    w, service = busy
    d = Daemon(tmp_path, "--pyroscope", collector.url)
    wait_for(lambda: len(profiles_of(collector, service)) >= 3, 30,
                       "three profiles of the workload")
    rc, _ = d.stop()
    assert rc == 0, d.log()
    for req in collector.requests:
        assert req.path == "/push.v1.PusherService/Push"
        assert req.headers["Content-Type"] == "application/proto"
        for labels, samples in push_request_checked(req.body):
            # Other Pythons on the host are profiled too: one started meanwhile (a fork of
            # pytest's, beside two CPU hogs) gets its start-up import profile.
            kinds = {"process_cpu"} if labels["service_name"] == service else \
                {"process_cpu", "import"}
            assert labels["__name__"] in kinds and samples == 1, labels
        for labels, pid, raw in push_profiles(req.body):
            assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                r"[0-9a-f]{12}", pid)
            assert labels["host"] and labels["service_name"]
            protoc_decode("perftools.profiles.Profile", "profile.proto", gzip.decompress(raw))
    mine = profiles_of(collector, service)
    assert_tiles_time(mine)
    assert len({pid for _, _, pid, _ in mine}) == len(mine)
    check_pprof(mine[1][3], tmp_path)
    text = protoc_decode("perftools.profiles.Profile", "profile.proto", gzip.decompress(mine[1][3]))
    assert f'"service_name={service}"' in text  # profile labels ride along as comments


def test_collector_down_then_back_delivers_every_interval_once(tmp_path, collector, busy):
    w, service = busy
    d = Daemon(tmp_path, "--pyroscope", collector.url, "--backoff-max", "1")
    wait_for(lambda: len(profiles_of(collector, service)) >= 2, 30, "two profiles")
    collector.down()
    wait_for(lambda: len(spooled_of(d, service)) >= 5, 30,
             "five intervals of the workload spooled while it is down")
    collector.up()
    wait_for(lambda: not spool_files(d), 30, "the spool to drain")
    w.stop()  # no more samples of the service: its last interval is flushed at the stop
    n = len(profiles_of(collector, service))
    rc, _ = d.stop()
    assert rc == 0, d.log()
    mine = profiles_of(collector, service)
    assert len(mine) >= 7 and len(mine) <= n + 1
    assert_tiles_time(mine)
    # the spool drains oldest first: the service's profiles arrive in time order
    arrived = [pprof_times(raw)[0] for req in collector.accepted()
               for labels, _, raw in push_profiles(req.body)
               if labels.get("service_name") == service]
    assert arrived == sorted(arrived), "the spool was not drained oldest first"
    s = d.delivery()
    assert s["failed"] > 0 and s["dropped"] == 0 and s["rejected"] == 0
    assert s["delivered"] == len(collector.accepted())
    assert s["submitted"] == s["delivered"] + s["spooled"]


def test_small_spool_cap_counts_every_drop(tmp_path, collector, busy):
    w, service = busy
    collector.down()
    d = Daemon(tmp_path, "--pyroscope", collector.url, "--backoff-max", "1",
               "--spool-cap", "2048")
    wait_for(lambda: (d.metric("pyrometer_spool_dropped_total") or 0) >= 2, 30,
             "two profiles dropped for the cap")
    collector.up()
    wait_for(lambda: not spool_files(d), 30, "the spool to drain")
    w.stop()
    rc, _ = d.stop()
    assert rc == 0, d.log()
    s = d.delivery()
    assert s["dropped"] > 0, d.log()
    assert s["delivered"] == len(collector.accepted())
    assert s["dropped"] == s["submitted"] - s["delivered"] - s["spooled"]
    assert "spool: full" in d.log()
    assert_tiles_time(profiles_of(collector, service)[-2:])  # the newest survived


def test_401_is_not_retried_and_is_logged_once(tmp_path, collector, busy):
    collector.answer = lambda req: (401, {"Content-Type": "application/json"},
                                    b'{"code":"unauthenticated","message":"bad token 7f3a"}')
    d = Daemon(tmp_path, "--pyroscope", collector.url, "--backoff-max", "0.2")
    wait_for(lambda: len(collector.requests) >= 3, 30, "three requests")
    rc, _ = d.stop()
    assert rc == 0
    s = d.delivery()
    # An upload that SIGTERM cut short went to the spool, answered or not: at most one.
    assert len(collector.requests) - 1 <= s["rejected"] <= len(collector.requests)
    assert s["rejected"] == s["submitted"] - s["spooled"]
    assert s["failed"] <= 1 and s["delivered"] == 0
    bodies = [r.body for r in collector.requests]
    assert len(set(bodies)) == len(bodies), "a refused profile was sent again"
    refusals = [l for l in d.lines if "HTTP 401" in l]
    assert len(refusals) == 1 and "bad token 7f3a" in refusals[0]


def test_429_retry_after_is_respected(tmp_path, collector, busy):
    first = []

    def answer(req):
        if not first:
            first.append(req)
            return 429, {"Retry-After": "3"}, b"slow down"
        return 200, {}, b""
    collector.answer = answer
    d = Daemon(tmp_path, "--pyroscope", collector.url, "--backoff-max", "0.2")
    wait_for(lambda: len(collector.requests) >= 2, 30, "a second request")
    rc, _ = d.stop()
    assert rc == 0
    gap = collector.requests[1].time - collector.requests[0].time
    assert gap >= 2.9, f"retried after {gap:.2f} s despite Retry-After: 3"
    assert collector.requests[1].body == collector.requests[0].body  # the same profile again


def test_sigterm_mid_upload_spools_and_a_restart_delivers_once(tmp_path, collector, busy):
    w, service = busy
    hang = threading.Event()
    closed = []  # when the daemon closed the first hung upload's connection

    def answer(req):
        # the collector accepts the connection and never answers; it notes when the
        # client gives up (its end of the connection reads as closed)
        while not hang.is_set():
            if select.select([req.conn], [], [], 0.05)[0]:
                if not req.conn.recv(1, socket.MSG_PEEK):
                    closed.append(time.monotonic())
                    break
        return 503, {}, b""
    collector.answer = answer
    d = Daemon(tmp_path, "--pyroscope", collector.url)
    # one upload hangs, later intervals queue up behind it
    wait_for(lambda: collector.received >= 1 and
             (d.metric("pyrometer_queue_profiles") or 0) >= 2, 30,
             "a hung upload and two profiles queued behind it")
    w.stop()
    rc, took = d.stop()
    # README: the upload in flight gets 2 s more, then is cut short; exit 0 at most about
    # 3 s after SIGTERM (the bound here leaves room for a loaded machine)
    assert rc == 0 and took < 5, f"exit {rc} after {took:.1f} s"
    wait_for(lambda: closed, 5, "the collector to see the hung upload's connection closed")
    grace = closed[0] - d.stopped_at
    assert 2.0 <= grace <= took + 0.5, (grace, took)
    left = d.delivery()["spooled"]
    assert left >= 3 and len(spool_files(d)) == left
    hang.set()
    collector.requests.clear()
    collector.answer = lambda req: (200, {}, b"")
    d2 = Daemon(tmp_path, "--pyroscope", collector.url)
    wait_for(lambda: not spool_files(d2), 30, "the spool to drain after a restart")
    d2.stop()
    mine = profiles_of(collector, service)
    assert len(mine) >= 3
    assert_tiles_time(mine)
    assert d2.delivery()["delivered"] >= left


def test_a_collector_that_never_accepts_is_given_up_after_10_s(tmp_path, busy):
    """README: a 10 s connect timeout. A listener whose accept queue is full drops the
    daemon's SYNs, so its connect hangs; libcurl's own account of the attempt, which the
    daemon logs, names how long it waited."""
    w, service = busy
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname())  # the queue's one place
    try:
        d = Daemon(tmp_path, "--pyroscope", f"http://127.0.0.1:{listener.getsockname()[1]}")
        wait_for(lambda: "pyroscope: cannot deliver" in d.log(), 60, "a failed delivery")
        rc, _ = d.stop()
    finally:
        filler.close()
        listener.close()
    assert rc == 0, d.log()
    m = re.search(r"pyroscope: cannot deliver \(HTTP 0: Failed to connect to 127\.0\.0\.1 "
                  r"port \d+ after (\d+) ms: Timeout was reached\)", d.log())
    # 10 s (and room for a loaded machine to wake it late: 10 s is the floor that matters)
    assert m and 10000 <= int(m.group(1)) < 12000, d.log()


def test_sigterm_lets_an_upload_being_answered_finish(tmp_path, collector, busy):
    """A collector that takes a second to answer: SIGTERM in that second must not cut the
    upload short, or the profile it accepted is spooled and sent again after a restart."""
    w, service = busy
    answering = threading.Event()

    def answer(req):
        answering.set()
        time.sleep(1)
        return 200, {}, b""
    collector.answer = answer
    d = Daemon(tmp_path, "--pyroscope", collector.url)
    assert answering.wait(30), "no upload within 30 s"
    rc, took = d.stop()
    assert rc == 0 and took < 10, f"exit {rc} after {took:.1f} s"
    # an answer the daemon did not wait for is accepted all the same
    wait_for(lambda: len(collector.requests) == collector.received, 10, "every answer given")
    s = d.delivery()
    accepted = {pid for _, _, pid, _ in profiles_of(collector, service)}
    assert s["delivered"] == len(collector.accepted()) >= 1, d.log()
    assert s["failed"] == 0, d.log()
    assert s["submitted"] == s["delivered"] + s["spooled"]
    d2 = Daemon(tmp_path, "--pyroscope", collector.url)  # sends what was spooled
    wait_for(lambda: not spool_files(d2), 30, "the spool to drain after a restart")
    d2.stop()
    again = [pid for _, _, pid, _ in profiles_of(collector, service)]
    assert len(again) == len(set(again)) and accepted <= set(again), "a profile was sent twice"


def test_corrupt_spool_files_are_skipped_not_sent(tmp_path, collector):
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "0000000000000001.spool").write_bytes(b"PYROSPL1" + os.urandom(200))
    (spool / "0000000000000002.spool").write_bytes(b"PYROS")  # torn
    (spool / "0000000000000003.spool.tmp").write_bytes(b"half-written")
    d = Daemon(tmp_path, "--pyroscope", collector.url)
    wait_for(lambda: d.metric("pyrometer_spool_corrupt_total") == 2, 30,
             "the two corrupt files read")
    d.stop()
    assert collector.requests == [] or all(
        r.path == "/push.v1.PusherService/Push" for r in collector.requests)
    for r in collector.requests:
        push_request_checked(r.body)
    assert d.delivery()["corrupt"] == 2
    assert not (spool / "0000000000000003.spool.tmp").exists()
    assert "torn or corrupt" in d.log()


def test_ingest_api(tmp_path, collector, busy):
    w, service = busy
    d = Daemon(tmp_path, "--pyroscope", collector.url + "/", "--pyroscope-api", "ingest")
    wait_for(lambda: any(service in r.path for r in collector.accepted()), 30,
                       "an ingest request of the workload")
    d.stop()
    req = next(r for r in collector.accepted() if service in r.path)
    url = urllib.parse.urlparse(req.path)
    q = urllib.parse.parse_qs(url.query)
    assert url.path == "/ingest" and q["format"] == ["pprof"]
    assert q["name"][0].startswith(service + "{") and "host=" in q["name"][0]
    assert int(q["from"][0]) <= int(q["until"][0]) <= time.time() + 1
    check_pprof(req.body, tmp_path)


def test_auth_and_tenant_headers(tmp_path, collector, busy):
    token = tmp_path / "token"
    token.write_text("s3cr3t-token\n")
    token.chmod(0o644)
    r = subprocess.run([PYROMETER, "run", "--pyroscope", collector.url, "--token-file",
                        str(token)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and str(token) in r.stderr and "readable by others" in r.stderr
    token.chmod(0o600)
    d = Daemon(tmp_path, "--pyroscope", collector.url, "--token-file", str(token),
               "--tenant", "team-a")
    wait_for(lambda: collector.requests, 30, "a request")
    d.stop()
    h = collector.requests[0].headers
    assert h["Authorization"] == "Bearer s3cr3t-token" and h["X-Scope-OrgID"] == "team-a"
    assert "s3cr3t" not in d.log()
    pw = tmp_path / "pw"
    pw.write_text("hunter2")
    pw.chmod(0o600)
    collector.requests.clear()
    d = Daemon(tmp_path, "--pyroscope", collector.url, "--basic-auth-user", "alice",
               "--password-file", str(pw))
    wait_for(lambda: collector.requests, 30, "a request")
    d.stop()
    auth = collector.requests[0].headers["Authorization"]
    assert auth == "Basic " + base64.b64encode(b"alice:hunter2").decode()


def test_local_store_writes_per_service_profiles_under_a_cap(tmp_path, busy):
    w, service = busy
    store = tmp_path / "store"
    cap = 4096  # the least allowed: 9 profiles of about 450 bytes
    d = Daemon(tmp_path, "--store", str(store), "--store-cap", str(cap))
    sizes = {}  # every profile seen in the store, removed ones too

    def look():
        for p in store.rglob("*.pb.gz"):
            try:
                sizes[p] = p.stat().st_size
            except FileNotFoundError:
                pass  # removed meanwhile
    written = wait_stored(d, 16, each=look, every=0.1)
    d.stop()
    files = cpu_profiles((store / service).glob("*.pb.gz"))
    assert len(files) >= 2
    kept = list(store.rglob("*.pb.gz"))
    total = sum(f.stat().st_size for f in kept)
    sizes.update({p: p.stat().st_size for p in kept})
    # the cap removed profiles, oldest first, and no more than it had to: the last one it
    # removed (of any service: pytest's own Python is one, and its first profiles are the
    # largest) would not fit beside what is left. Services share intervals: of the removed
    # profiles of the newest interval, the largest stands for the last one.
    assert len(kept) < written, (len(kept), written)
    assert total <= cap, total

    def start(p):
        return int(p.name.split("-")[0])
    removed = [p for p in sizes if p not in kept]
    assert removed and max(start(p) for p in removed) <= min(start(p) for p in kept)
    newest = max(start(p) for p in removed)
    last = max(sizes[p] for p in removed if start(p) == newest)
    assert total + last > cap, (total, last, sorted(sizes.values()))
    spans = [tuple(map(int, f.name[:-len(".pb.gz")].split("-"))) for f in files]
    spans.sort()
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert a1 == b0 and a0 < a1
    check_pprof(files[-2].read_bytes(), tmp_path)


def test_ingest_name_cannot_spoof_labels(tmp_path, collector, workload):
    """The ingest API's name has no escaping: a service named svc{host=spoofed} must not
    become a series with host=spoofed."""
    service = f"svc{{host=spoofed}}-{uuid.uuid4().hex[:6]}"
    workload(ZOO["py311"], workload_script("cpu_split.py"), ["600"],
             env={"PYROMETER_SERVICE": service})
    d = Daemon(tmp_path, "--pyroscope", collector.url, "--pyroscope-api", "ingest")
    tail = service[-6:]
    wait_for(lambda: any(tail in r.path for r in collector.accepted()), 30,
                       "an ingest request of the workload")
    d.stop()
    req = next(r for r in collector.accepted() if tail in r.path)
    name = urllib.parse.parse_qs(urllib.parse.urlparse(req.path).query)["name"][0]
    assert name.startswith(f"svc_host_spoofed_-{tail}{{"), name
    assert name.count("{") == 1 and name.count("}") == 1 and "host=spoofed" not in name


def balanced(s):
    """Every profile in exactly one bucket."""
    return s["submitted"] + s["carried"] == (s["delivered"] + s["rejected"] + s["dropped"] +
                                             s["corrupt"] + s["lost"] + s["spooled"])


def test_a_full_disk_under_the_spool_loses_nothing_uncounted(tmp_path, collector, busy):
    """The spool on a 48 KiB file system that fills up, and a FIFO named like a spool file
    in it: write failures are counted (exit line and metric), the FIFO is read as corrupt
    and never waited on, the identity balances, and what is left is carried over and counted
    by the next run."""
    spool = tmp_path / "spool"
    spool.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k,mode=0700", "tmpfs", str(spool)],
                   check=True)
    try:
        os.mkfifo(spool / "00000000000000ff.spool")
        collector.down()
        d = Daemon(tmp_path, "--pyroscope", collector.url, "--backoff-max", "1")
        end = time.monotonic() + 90
        while not (d.metric("pyrometer_spool_write_failures_total") or 0) > 0:
            assert time.monotonic() < end, d.log()[-3000:]
            time.sleep(0.5)
        rc, secs = d.stop()
        assert rc == 0 and secs < 5, (rc, secs)
        s = d.delivery()
        assert s["lost"] > 0 and s["corrupt"] == 1 and s["carried"] == 1, s
        assert balanced(s), s
        collector.up()
        d2 = Daemon(tmp_path, "--pyroscope", collector.url, "--backoff-max", "1")
        wait_for(lambda: not spool_files(d2), 30, "the spool to drain")
        rc, _ = d2.stop()
        assert rc == 0
        s2 = d2.delivery()
        assert s2["carried"] == s["spooled"] and s2["delivered"] >= s["spooled"], (s, s2)
        assert balanced(s2), s2
    finally:
        subprocess.run(["umount", "-l", str(spool)])


# ---- retries, redirects, TLS (README: Sinks and delivery) ----

@pytest.mark.parametrize("status", [408, 500, 502, 503])
def test_timeouts_and_server_errors_are_retried(tmp_path, collector, busy, status):
    """The first answer is `status`; the same profile is sent again, and delivered once."""
    first = []

    def answer(req):
        if not first:
            first.append(req)
            return status, {}, b"try later"
        return 200, {}, b""
    collector.answer = answer
    d = Daemon(tmp_path, "--pyroscope", collector.url, "--backoff-max", "0.5")
    wait_for(lambda: len(collector.requests) >= 2, 30, "a second request")
    rc, _ = d.stop()
    assert rc == 0
    assert collector.requests[1].body == collector.requests[0].body
    s = d.delivery()
    assert s["rejected"] == 0 and s["failed"] >= 1, s
    bodies = [r.body for r in collector.accepted()]
    assert len(bodies) == len(set(bodies)), "a profile was delivered twice"


def test_retry_after_as_an_http_date(tmp_path, collector, busy):
    import email.utils
    first = []

    def answer(req):
        if not first:
            first.append(req)
            when = email.utils.formatdate(time.time() + 4, usegmt=True)
            return 503, {"Retry-After": when}, b"maintenance"
        return 200, {}, b""
    collector.answer = answer
    d = Daemon(tmp_path, "--pyroscope", collector.url, "--backoff-max", "0.2")
    wait_for(lambda: len(collector.requests) >= 2, 30, "a second request")
    d.stop()
    gap = collector.requests[1].time - collector.requests[0].time
    # the date has whole seconds: 4 s ahead is at least 3 s ahead
    assert gap >= 2.9, f"retried after {gap:.2f} s despite Retry-After in 4 s"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_not_followed(tmp_path, collector, busy, status):
    """A redirect is a refusal: never followed (the Location, here on the same collector, sees
    nothing) and the profile not sent again."""
    collector.answer = lambda req: ((status, {"Location": "/elsewhere"}, b"")
                                    if req.path != "/elsewhere" else (200, {}, b""))
    d = Daemon(tmp_path, "--pyroscope", collector.url)
    wait_for(lambda: len(collector.requests) >= 3, 30, "three requests")
    d.stop()
    assert not [r for r in collector.requests if r.path == "/elsewhere"]
    bodies = [r.body for r in collector.requests]
    assert len(bodies) == len(set(bodies)), "a redirected profile was sent again"
    assert d.delivery()["rejected"] >= 3
    assert f"HTTP {status}" in d.log()


def test_tls_certificates_are_verified(tmp_path, busy):
    """An HTTPS collector whose certificate no trusted CA signed: nothing is delivered (the
    handshake fails), profiles wait in the spool, and the reason is logged. curl with the
    collector's own CA reaches it, so the collector itself works."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    c = Collector(tls=(str(cert), str(key)))
    try:
        ok = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
                             str(cert), "-X", "POST", "--data", "x", c.url + "/probe"],
                            capture_output=True, text=True, timeout=30)
        assert ok.stdout == "200", ok
        c.requests.clear()
        d = Daemon(tmp_path, "--pyroscope", c.url, "--backoff-max", "1")
        end = time.monotonic() + 30
        while len(spool_files(d)) < 2:
            assert time.monotonic() < end, d.log()
            time.sleep(0.2)
        d.stop()
        assert c.requests == [], "a request got through an unverified TLS handshake"
        s = d.delivery()
        assert s["delivered"] == 0 and s["failed"] >= 1 and s["spooled"] >= 2, s
        assert "certificate" in d.log(), d.log()[-2000:]
    finally:
        c.down()


def test_store_max_age_removes_old_profiles(tmp_path, busy):
    w, service = busy
    store = tmp_path / "store"
    d = Daemon(tmp_path, "--store", str(store), "--store-max-age", "3")
    # profiles of 7 s, more than twice the age: by time, not by count, since how many
    # profiles an interval makes depends on the Python processes running beside the test
    wait_stored(d, 1)
    first = min(stored_spans(store))[0]
    wait_for(lambda: max(until for _, until in stored_spans(store)) >= first + 7000, 30,
             "7 s of profiles")
    written = wait_stored(d, 1)
    d.stop()
    spans = stored_spans(store)
    assert 0 < len(spans) < written, (spans, written)
    newest = max(until for _, until in spans)
    # each write removes what began more than 3 s before it; the last write was at `newest`
    # or within an interval after it
    for start, _ in spans:
        assert start + 3000 >= newest - 1500, (start, newest, spans)


def test_store_enabled_auto_follows_pyroscope(tmp_path, collector, busy):
    """auto (the default): the local store is written only when no Pyroscope is set;
    true writes both."""
    w, service = busy
    for flags, stored in ((["--pyroscope", collector.url], False),
                          (["--pyroscope", collector.url, "--store-enabled", "true"], True),
                          ([], True)):
        store = tmp_path / f"store-{len(flags)}"
        pushed = len(profiles_of(collector, service))
        d = Daemon(tmp_path, "--store", str(store), *flags)
        # an interval of the service delivered where it goes: then whether the store was
        # written says all
        wait_for(lambda: len(profiles_of(collector, service)) > pushed if flags else
                 list(store.glob(f"{service}/*.pb.gz")), 30, "a profile of the service")
        d.stop()
        files = list(store.glob(f"{service}/*.pb.gz"))
        assert bool(files) == stored, (flags, files)
        if flags:
            assert profiles_of(collector, service), "nothing reached the collector"


# ---- backoff, the stall timeout, the memory queue (README: Sinks and delivery) ----

def test_backoff_doubles_up_to_its_cap_with_jitter(tmp_path, collector, busy):
    """A collector that always answers 503: the waits between attempts are 1, 2, 4, 4, 4 s
    (--backoff-max 4), each cut to 50-100 % at random so that a fleet does not retry in
    step."""
    collector.answer = lambda req: (503, {}, b"down")
    d = Daemon(tmp_path, "--pyroscope", collector.url, "--backoff-max", "4")
    wait_for(lambda: len(collector.requests) >= 6, 60, "six attempts")
    d.stop()
    times = [r.time for r in collector.requests[:6]]
    gaps = [b - a for a, b in zip(times, times[1:])]
    ratios = []
    for gap, full in zip(gaps, (1, 2, 4, 4, 4)):
        # the upper bound leaves room for sending (loopback) and for a loaded scheduler
        assert 0.5 * full - 0.05 <= gap <= full + 1.0, (gaps, full)
        ratios.append(gap / full)
    # jittered: five uniform draws in [0.5, 1] that all land within 1 % of each other
    # would happen about once in 10^7 runs
    assert max(ratios) - min(ratios) > 0.01, ratios
    assert d.delivery()["failed"] >= 6


def test_a_stalled_upload_is_abandoned_after_30_s_and_sent_again(tmp_path, collector, busy):
    """The collector reads the body and never answers: the attempt ends after 30 s without a
    byte (README), and the same profile goes out again."""
    release = threading.Event()
    first = []

    def answer(req):
        if not first:
            first.append(req)
            release.wait(90)
        return 200, {}, b""
    collector.answer = answer
    d = Daemon(tmp_path, "--pyroscope", collector.url, "--backoff-max", "0.5")
    try:
        wait_for(lambda: len(collector.requests) >= 1, 75, "a second request")
        gap = collector.requests[0].time - first[0].time
        wait_for(lambda: first[0].body in [r.body for r in collector.accepted()
                                                     if r is not first[0]], 30,
                           "the stalled profile sent again")
    finally:
        release.set()
    d.stop()
    # the retry comes 30 s after the last byte moved, plus up to 0.5 s of backoff (and up to
    # a second more: libcurl looks at the transfer about once a second)
    assert 29.9 <= gap <= 30 + 0.5 + 1 + 1, f"the stalled upload was abandoned after {gap:.1f} s"
    assert "no byte sent or received for 30 s" in d.log()
    # the stalled profile is delivered once, and the spool sends it before anything younger
    # (other services' profiles of the same interval may go first)
    def start(req):
        return min(pprof_times(raw)[0] for _, _, raw in push_profiles(req.body))
    # (the stalled request itself is recorded when the test releases it: not counted)
    after = [r for r in collector.accepted() if r is not first[0]]
    delivered = [r.body for r in after]
    assert delivered.count(first[0].body) == 1
    assert all(start(r) <= start(first[0]) for r in after[:delivered.index(first[0].body)])


def test_the_memory_queue_holds_8_and_spills_the_rest_to_the_spool(tmp_path, collector, busy):
    """While an upload hangs, later profiles wait in memory up to 8; beyond that the oldest go
    to the spool. Once the collector answers, every profile is delivered, once, in order."""
    w, service = busy
    release = threading.Event()
    collector.answer = lambda req: (release.wait(60), (200, {}, b""))[1]
    d = Daemon(tmp_path, "--pyroscope", collector.url)
    queued = []
    try:
        end = time.monotonic() + 25  # under the 30 s stall timeout
        while time.monotonic() < end:
            text = d.metrics()
            q = re.search(r"^pyrometer_queue_profiles (\S+)$", text, re.M)
            s = re.search(r"^pyrometer_spool_profiles (\S+)$", text, re.M)
            if q and s:  # served from the first interval's end on
                queued.append((float(q.group(1)), float(s.group(1))))
                if queued[-1][1] >= 3:
                    break
            time.sleep(0.2)
    finally:
        release.set()
    assert queued[-1][1] >= 3, queued
    assert max(q for q, _ in queued) == 8, queued
    assert all(q == 8 for q, s in queued if s > 0), queued
    wait_for(lambda: d.metric("pyrometer_spool_profiles") == 0 and
                       d.metric("pyrometer_queue_profiles") == 0, 30, "queue and spool to drain")
    w.stop()
    d.stop()
    s = d.delivery()
    assert s["failed"] == 0 and s["dropped"] == 0, s
    assert s["submitted"] == s["delivered"] + s["spooled"], s
    assert_tiles_time(profiles_of(collector, service))
