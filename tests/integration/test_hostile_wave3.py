#!/usr/bin/python3
"""Wave-3 attacks the programs withstand, kept as tests (tests/hostile/FINDINGS.md, "Wave 3",
lists the ones they did not). Real binaries, 127.0.0.1 only, a throwaway PostgreSQL
(test_headend_pg.py's Cluster) removed at the end:
- `der-sim inventory --shard` / `serve --shard`: 0/0, 3/2, -1/2, 1/99999, 1/0, 1/, /2, 1//2,
  1/2x, a 20-digit K, a trailing space: exit 2 naming --shard; `serve --port-base 65500` of a
  100-site fleet: exit 1 naming the first port past 65535 (never a wrapped port);
- two headends on one PostgreSQL, a gateway on A: another database client NOTIFYs
  derloop_dispatch with an empty payload, 7,999 bytes, a newline and a quote, a real id with
  trailing spaces, 2,000 ids of nothing: both headends stay up and answer; the same QUEUED row
  announced three times reaches the gateway once; both headends' cluster connections stopped
  (SIGSTOP of their PostgreSQL backends) for 1.5 s while a dispatch for the gateway is posted on
  B: it is delivered once they run again;
- der-gateway --metrics-listen: POST with a body, an unknown method, a 60 KB URL, a 60 KB
  header, two pipelined GETs, a request cut mid-header: each answered or closed, then an honest
  scrape is still served and the gateway has not stopped.
About 12 s."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "lib"))
from dersim import DerSim  # noqa: E402
from test_headend_cluster import ARGS, INVENTORY, connect  # noqa: E402
from test_headend_peer import BUILD, Fail, Headend, check  # noqa: E402
from test_headend_pg import Cluster  # noqa: E402

SIM = os.path.join(BUILD, "bin", "der-sim")
GATEWAY = os.path.join(BUILD, "bin", "der-gateway")
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def setpoints(gw, t):
    out, end = [], time.time() + t
    while time.time() < end:
        m = gw.next(0.05)
        if m is not None and m.HasField("setpoint"):
            out.append(m.setpoint.setpoint_id)
    return out


def shards():
    for bad in ("0/0", "3/2", "-1/2", "1/99999", "1/0", "1/", "/2", "1//2", "1/2x",
                "99999999999999999999/2", "1/2 "):
        for cmd in (["inventory"], ["serve", "--port-base", "0"]):
            p = subprocess.run([SIM] + cmd + ["--shard", bad, "scenarios/fleet-demo.json"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=10)
            check(p.returncode == 2 and b"--shard" in p.stderr,
                  "%s --shard %r: exit %d %r" % (cmd[0], bad, p.returncode, p.stderr[-200:]))
    p = subprocess.run([SIM, "serve", "--port-base", "65500", "scenarios/fleet-demo.json"],
                       cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    check(p.returncode == 1 and b"event=listen_failed site=site-037 listen=127.0.0.1:65536"
          in p.stderr, "port-base 65500 of 100 sites: exit %d %r" % (p.returncode,
                                                                     p.stderr[-300:]))
    print("ok: 11 bad --shard values refused by inventory and serve; ports past 65535 refused")


def cluster():
    pg = Cluster()
    ta, tb = tempfile.mkdtemp(prefix="wave3-a-"), tempfile.mkdtemp(prefix="wave3-b-")
    a = b = gw = None
    try:
        pg.start()
        pg.psql("CREATE DATABASE derloop", db="postgres")
        os.environ["DATABASE_URL"] = pg.url
        a = Headend(ta, ARGS + ["--node-id", "node-a"], inventory=INVENTORY)
        b = Headend(tb, ARGS + ["--node-id", "node-b"], inventory=INVENTORY)
        gw = connect(a, 1)
        now = int(time.time() * 1000)
        pg.psql("INSERT INTO dispatch(id, seq, site_id, asset_id, power_w, created_ms, "
                "expires_ms, updated_ms, state, detail, session_id, requested_by) VALUES "
                "('dup-1', 1000, 'site-1', '', 50000, %d, %d, %d, 0, '', 0, 'test')"
                % (now, now + 60000, now))
        # three transactions: PostgreSQL folds identical payloads only within one
        pg.psql("SELECT pg_notify('derloop_dispatch', 'dup-1'); "
                "SELECT pg_notify('derloop_dispatch', 'dup-1'); "
                "SELECT pg_notify('derloop_dispatch', 'dup-1');")
        got = setpoints(gw, 0.8)
        check(got == ["dup-1"], "one QUEUED row announced 3 times: the gateway got %r" % got)
        pg.psql("SELECT pg_notify('derloop_dispatch', ''); "
                "SELECT pg_notify('derloop_dispatch', repeat('x', 7999)); "
                "SELECT pg_notify('derloop_dispatch', E'a\\nb\"c'); "
                "SELECT pg_notify('derloop_dispatch', 'dup-1' || repeat(' ', 100)); "
                "SELECT count(pg_notify('derloop_dispatch', 'none-' || g)) "
                "FROM generate_series(1, 2000) g;")
        time.sleep(0.3)
        for he in (a, b):
            check(he.p.poll() is None, "a headend died of hostile notifications")
            st, _ = he.http("GET", "/sites")
            check(st == 200, "GET /sites after hostile notifications: %d" % st)
        check(setpoints(gw, 0.3) == [], "a hostile notification sent something")
        print("ok: a QUEUED row announced 3 times is sent once; empty, 7,999-byte, newline, "
              "padded and 2,000 unknown payloads change nothing")
        rows = pg.psql("SELECT pid FROM pg_stat_activity WHERE application_name = "
                       "'der-headend-cluster'")
        pids = [int(r) for r in rows]
        check(len(pids) == 2, "two cluster connections, got %r" % rows)
        for p in pids:  # the backends of our throwaway cluster, by pid
            os.kill(p, signal.SIGSTOP)
        try:
            st, r = b.http("POST", "/dispatch", {"site_id": "site-1", "mw": 0.01, "ttl_s": 60})
            check(st == 202, "POST on B while PostgreSQL stalls: %d %r" % (st, r))
            time.sleep(1.5)
        finally:
            for p in pids:
                os.kill(p, signal.SIGCONT)
        got = setpoints(gw, 5)
        check(r["setpoint_id"] in got, "posted on B during the stall: the gateway on A got %r"
              % got)
        print("ok: cluster connections stalled 1.5 s: a dispatch posted on B meanwhile arrives")
    finally:
        if gw:
            gw.close()
        for he in (a, b):
            if he:
                he.stop()
        os.environ.pop("DATABASE_URL", None)
        pg.cleanup()
        shutil.rmtree(ta, ignore_errors=True)
        shutil.rmtree(tb, ignore_errors=True)


def raw(port, data, wait=1.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    out = b""
    try:
        s.sendall(data)  # may be reset mid-way: the server refused before reading it all
        s.shutdown(socket.SHUT_WR)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    except OSError:  # reset: a refusal is an answer too
        return out
    finally:
        s.close()


def metrics():
    with DerSim("scenarios/fleet-demo.json", "--set", "sites[0].replicas=2") as sim:
        log = os.path.join(sim.tmp.name, "gateway.log")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        nowhere = s.getsockname()[1]
        s.close()
        with open(log, "w") as errf:
            gw = subprocess.Popen([GATEWAY, "--config-dir", sim.config_dir, "--headend",
                                   "127.0.0.1:%d" % nowhere, "--metrics-listen", "127.0.0.1:0"],
                                  stdout=subprocess.DEVNULL, stderr=errf)
        try:
            port, end = None, time.monotonic() + 10
            while port is None and time.monotonic() < end:
                m = re.search(r"event=metrics_listen addr=127\.0\.0\.1:(\d+)", open(log).read())
                port = int(m.group(1)) if m else None
                time.sleep(0.05)
            check(port, "no event=metrics_listen line")
            time.sleep(1.2)
            answers = {
                "POST with a body": raw(port, b"POST /metrics HTTP/1.1\r\nHost: x\r\n"
                                        b"Content-Length: 100000\r\n\r\n" + b"a" * 100000),
                "unknown method": raw(port, b"FOO /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
                "60 KB URL": raw(port, b"GET /" + b"a" * 60000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
                "60 KB header": raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX: " +
                                    b"b" * 60000 + b"\r\n\r\n"),
                "pipelined": raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                                 b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                "cut mid-header": raw(port, b"GET /metrics HTTP/1.1\r\nHo"),
            }
            check(answers["POST with a body"].startswith(b"HTTP/1.1 405"),
                  "POST: %r" % answers["POST with a body"][:60])
            check(answers["pipelined"].count(b"HTTP/1.1 200") == 2,
                  "pipelined: %d answers" % answers["pipelined"].count(b"HTTP/1.1 200"))
            for what in ("unknown method", "60 KB URL", "60 KB header"):
                check(answers[what] == b"" or re.match(rb"HTTP/1\.1 [45]\d\d", answers[what]),
                      "%s: %r" % (what, answers[what][:60]))
            ok = raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            check(ok.startswith(b"HTTP/1.1 200") and b"der_gateway_cycle_seconds_count" in ok,
                  "honest scrape after the attacks: %r" % ok[:80])
            check(gw.poll() is None, "der-gateway stopped")
            print("ok: /metrics: %s" % ", ".join(
                "%s -> %s" % (k, (v.split(b"\r\n", 1)[0].decode(errors="replace") or "closed"))
                for k, v in answers.items() if k != "pipelined") + ", pipelined -> 2 x 200")
        finally:
            gw.terminate()
            gw.wait(10)


def main():
    t0 = time.time()
    shards()
    cluster()
    metrics()
    print("PASS (%.1f s)" % (time.time() - t0))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Fail as e:
        print("FAIL: %s" % e)
        sys.exit(1)
