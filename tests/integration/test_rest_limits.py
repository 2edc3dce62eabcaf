#!/usr/bin/python3
"""der-headend REST hardening against the real binary on 127.0.0.1 (docs/operations.md, REST
limits):
- 2,000 idle or half-sent connections from one address (127.0.0.2, the attacker) do not keep
  /healthz from answering another address (127.0.0.1) within 100 ms; the headend runs with
  the common descriptor limit of 1,024 (the issue saw /healthz stop at ~875 connections); the
  connections past --http-max-per-ip are closed at once, the rest after --http-timeout;
- a request for /nope%0Alevel=error%20event=store_down writes exactly one log line, with the
  path escaped in it (no forged line, no forged field);
- ids with a NUL or a control character, in a body or a URL, answer 400 naming the field,
  instead of acting on the id cut at the NUL."""

import errno
import json
import os
import resource
import select
import shlex
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
ATTACK = 2000
PER_IP = 16
TIMEOUT_S = 2
INVENTORY = {"sites": [{"site_id": "site-a", "gateways": ["gw-a"], "assets": [
    {"asset_id": "a-bat", "type": "battery", "min_power_w": -5e6, "max_power_w": 5e6}]}]}


def check(cond, msg):
    if not cond:
        print("FAIL: " + msg)
        sys.exit(1)


def child_limits():
    # The headend gets the usual soft limit of 1,024 descriptors, whatever this test raised.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))


class Headend:
    def __init__(self, tmp, args):
        inv = os.path.join(tmp, "inventory.json")
        with open(inv, "w") as f:
            json.dump(INVENTORY, f)
        self.logpath = os.path.join(tmp, "headend.log")
        self.log = open(self.logpath, "ab")
        cmd = [os.path.join(BUILD, "bin", "der-headend"), "--grpc-listen", "127.0.0.1:0",
               "--http-listen", "127.0.0.1:0", "--inventory", inv, "--db", ":memory:"] + args
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log,
                                  preexec_fn=child_limits)
        r, _, _ = select.select([self.p.stdout], [], [], 10)
        check(r, "der-headend did not print its ready line within 10 s")
        line = self.p.stdout.readline().decode().split()
        check(len(line) == 3 and line[2] == "ready", "bad ready line %r" % line)
        self.port = int(line[1].rsplit(":", 1)[1])

    def logtext(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        return self.p.returncode


def request(port, raw, timeout=2.0, src="127.0.0.1"):
    """Sends raw bytes, returns (status, body bytes, seconds to the whole answer)."""
    t0 = time.monotonic()
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((src, 0))
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(raw)
        data = b""
        while True:
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                n = [int(ln.split(b":")[1]) for ln in head.split(b"\r\n")
                     if ln.lower().startswith(b"content-length:")]
                if n and len(body) >= n[0]:
                    return int(head.split()[1]), body[:n[0]], time.monotonic() - t0
            chunk = s.recv(65536)
            if not chunk:
                return None, data, time.monotonic() - t0
            data += chunk
    except OSError:
        return None, b"", time.monotonic() - t0
    finally:
        s.close()


def get(port, path, src="127.0.0.1", timeout=2.0):
    return request(port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                   timeout, src)


def post(port, path, body):
    return request(port, b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                   b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
                   + body)


def closed_by_peer(s):
    """True when the server has closed s (EOF or reset); never blocks."""
    try:
        return s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_connection_flood(tmp):
    he = Headend(tmp, ["--http-max-per-ip", str(PER_IP), "--http-timeout", "%ds" % TIMEOUT_S,
                       "--http-max-connections", "256"])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    check(hard >= ATTACK + 200, "RLIMIT_NOFILE hard limit %d too low for the test" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, ATTACK + 1000), hard))
    socks = []
    try:
        st, _, dt = get(he.port, b"/healthz")
        check(st == 200, "healthz before the flood: %r" % st)
        t0 = time.monotonic()
        for i in range(ATTACK):  # bounded: one connect each, non-blocking
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", he.port))
            except BlockingIOError:
                pass
            socks.append(s)
        half = 0
        deadline = time.monotonic() + 10
        for i, s in enumerate(socks):  # every other one sends half a request
            if i % 2:
                continue
            while time.monotonic() < deadline:
                try:
                    s.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                    half += 1
                    break
                except BlockingIOError:
                    select.select([], [s], [], 0.05)
                except OSError:
                    break  # already closed by the server (over the per-IP limit)
        print("flood: %d connections from 127.0.0.2 (%d half-sent) in %.2f s"
              % (ATTACK, half, time.monotonic() - t0))

        # /healthz from another address answers while the flood holds.
        times = []
        for _ in range(10):
            st, body, dt = get(he.port, b"/healthz")
            check(st == 200 and b'"status":"ok"' in body, "healthz under flood: %r %r" % (st, body))
            times.append(dt * 1000)
            time.sleep(0.05)
        times.sort()
        print("healthz under flood: median %.1f ms, max %.1f ms" % (times[5], times[-1]))
        check(times[-1] < 100, "healthz took %.1f ms under the flood (limit 100)" % times[-1])

        # Past the per-IP limit the server closes at once: within a second at most PER_IP
        # (plus the few still in the accept queue) are left open.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            still = sum(1 for s in socks if not closed_by_peer(s))
            if still <= PER_IP:
                break
            time.sleep(0.1)
        print("per-IP limit: %d of %d connections still open" % (still, ATTACK))
        check(still <= PER_IP, "%d connections from one address held (limit %d)" % (still, PER_IP))

        # The held ones are idle or half-sent: closed after the timeout.
        deadline = time.monotonic() + TIMEOUT_S + 5
        while time.monotonic() < deadline:
            still = sum(1 for s in socks if not closed_by_peer(s))
            if still == 0:
                break
            time.sleep(0.2)
        took = time.monotonic() - t0
        check(still == 0, "%d idle connections still open %.1f s after the flood" % (still, took))
        print("ok: every flood connection closed by the server within %.1f s (timeout %d s)"
              % (took, TIMEOUT_S))
        st, _, dt = get(he.port, b"/healthz", src="127.0.0.2")
        check(st == 200, "the attacking address is served again afterwards: %r" % st)
    finally:
        for s in socks:
            s.close()
        rc = he.stop()
    check(rc == 0, "der-headend exit %r" % rc)


def test_log_injection_and_ids(tmp):
    he = Headend(tmp, [])
    try:
        st, body, _ = get(he.port, b"/nope%0Alevel=error%20event=store_down%20reason=forged")
        check(st == 400, "forged path: %r %r" % (st, body))
        check(json.loads(body)["field"] == "path", "forged path error %r" % body)
        # NUL and control characters in ids: 400 on the field, nothing dispatched.
        st, body, _ = post(he.port, b"/dispatch", b'{"asset_id":"a-bat\\u0000evil","mw":0.001}')
        check(st == 400 and json.loads(body)["field"] == "asset_id", "NUL id: %r %r" % (st, body))
        st, body, _ = post(he.port, b"/dispatch", b'{"site_id":"site-a\\nx","mw":0.001}')
        check(st == 400 and json.loads(body)["field"] == "site_id", "LF id: %r %r" % (st, body))
        st, body, _ = get(he.port, b"/telemetry/a-bat%00evil")
        check(st == 400 and json.loads(body)["field"] == "asset_id", "URL NUL: %r %r" % (st, body))
        st, body, _ = get(he.port, b"/dispatch/sp-1%01")
        check(st == 400 and json.loads(body)["field"] == "setpoint_id", "URL ctl: %r" % body)
        st, body, _ = get(he.port, b"/telemetry/a-bat?from=1%00&to=2")
        check(st == 400 and json.loads(body)["field"] == "from", "query NUL: %r" % body)
        st, body, _ = post(he.port, b"/dispatch", b'{"asset_id":"a-bat","mw":0.001}')
        check(st == 202, "a good dispatch: %r %r" % (st, body))
        check(json.loads(body)["setpoint_id"] == "sp-1", "only one dispatch was made: %r" % body)
        print("ok: NUL and control characters in ids answer 400 on the field; nothing dispatched")
    finally:
        he.stop()
    lines = he.logtext().splitlines()
    forged = [ln for ln in lines if "store_down" in ln]
    check(len(forged) == 1, "expected one log line naming store_down, got %r" % forged)
    check("event=http_error method=GET path=\"/nope\\nlevel=error event=store_down reason=forged\""
          " status=400" in forged[0], "the line does not carry the escaped path: %r" % forged[0])
    # Read as logfmt (quoted values are one field): no line has a forged field of its own.
    fields = [shlex.split(ln) for ln in lines]
    check(all(f and f[0][:4].isdigit() for f in fields), "a line without its timestamp")
    check(not any("event=store_down" in f or f.count("level=error") for f in fields),
          "a forged line or field reached the log")
    nul = [ln for ln in lines if "evil" in ln]
    check(nul and all("\\x00evil" in ln for ln in nul), "NUL path not escaped: %r" % nul)
    print("ok: the forged request wrote one line: %s" % forged[0].split(" ", 1)[1])


def main():
    check(os.path.exists(os.path.join(BUILD, "bin", "der-headend")), "build der-headend first")
    with tempfile.TemporaryDirectory(prefix="derloop-rest-limits-") as tmp:
        test_log_injection_and_ids(tmp)
        test_connection_flood(tmp)
    print("PASS")


if __name__ == "__main__":
    main()
