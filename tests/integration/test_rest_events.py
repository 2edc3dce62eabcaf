#!/usr/bin/python3
"""GET /events, der-headend's Server-Sent Events (docs/operations.md, "Live events"):
der-headend with tokens (--auth) and a cap of 50 event streams, then
- without a token: 401; with a viewer token: 200 text/event-stream, a retry: hint and a hello
  event first, a ": keepalive" comment when nothing happens (keepalive=1 asks for one a second);
- `der-sim serve` with one site and its der-gateway: a stream watching the site (?site=) gets
  its telemetry points (with the site's sums), a stream without it gets none but a coalesced
  "sites" event; a dispatch POSTed by an operator shows QUEUED/SENT -> RECEIVED -> APPLIED;
- reconnecting with Last-Event-ID resumes (hello "resumed":true) and replays what followed;
- 50 open streams: the 51st is refused with 503 and Retry-After;
- SIGTERM with the 50 streams open: der-headend exits 0 at once (the time is printed), and the
  streams end.
Only 127.0.0.1; everything started is stopped on any exit."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import shutil

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dersim import BUILD, ROOT, DerSim, Fail, check  # noqa: E402
from test_e2e_headend import Proc, procs  # noqa: E402

GATEWAY = os.path.join(ROOT, BUILD, "bin", "der-gateway")
HEADEND = os.path.join(ROOT, BUILD, "bin", "der-headend")
CAP = 50


def scenario():
    return {
        "name": "events-test", "seed": 5, "start": "2026-06-21T09:00:00Z", "duration": "1d",
        "step": "1s",
        "profiles": {"sun": {"type": "clear_sky", "latitude": 48.1, "longitude": 11.6}},
        "sites": [{"id": "ev-1", "assets": [
            {"id": "ev-1-grid", "type": "meter", "role": "grid", "refresh": "1s"},
            {"id": "ev-1-bat", "type": "battery", "capacity_kwh": 10, "max_charge_kw": 5,
             "max_discharge_kw": 5, "soc_init": 0.5},
            {"id": "ev-1-pv", "type": "pv", "peak_kw": 5, "irradiance": "sun"}]}],
        "gateway": {"strategy": "null", "params": {}, "poll_period": "1s"},
    }


def token(db, name, role):
    out = subprocess.run([HEADEND, "token", "add", "--name", name, "--role", role, "--db", db],
                         capture_output=True, text=True, timeout=10)
    check(out.returncode == 0, "token add %s: %s" % (name, out.stderr))
    return out.stdout.split()[-1]


class Stream:
    """One GET /events over a plain socket: the status line, the headers, then the events
    (chunked transfer coding decoded)."""

    def __init__(self, addr, tok=None, query="", last_id=None):
        host, port = addr.split(":")
        self.s = socket.create_connection((host, int(port)), timeout=5)
        hdr = "GET /events%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n" % (query, addr)
        if tok:
            hdr += "Authorization: Bearer %s\r\n" % tok
        if last_id is not None:
            hdr += "Last-Event-ID: %s\r\n" % last_id
        self.s.sendall((hdr + "\r\n").encode())
        self.raw = b""
        while b"\r\n\r\n" not in self.raw:
            self._recv()
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:])}
        self.text = ""  # decoded body not yet parsed into events
        self.ended = False

    def _recv(self, timeout=5):
        self.s.settimeout(timeout)
        d = self.s.recv(65536)
        if not d:
            raise EOFError
        self.raw += d

    def _dechunk(self):
        while True:
            i = self.raw.find(b"\r\n")
            if i < 0:
                return
            n = int(self.raw[:i].split(b";")[0], 16)
            if len(self.raw) < i + 2 + n + 2:
                return
            if n == 0:
                self.ended = True
            self.text += self.raw[i + 2:i + 2 + n].decode()
            self.raw = self.raw[i + 2 + n + 2:]

    def body(self):
        """The rest of a plain (non-stream) answer."""
        n = int(self.headers.get("content-length", "0"))
        while len(self.raw) < n:
            self._recv()
        return json.loads(self.raw[:n])

    def next(self, timeout=5):
        """The next block: a dict of its fields (an event), or {"comment": ...}; None at the end
        of the stream."""
        end = time.monotonic() + timeout
        self._dechunk()
        while "\n\n" not in self.text:
            if self.ended:
                return None
            left = end - time.monotonic()
            if left <= 0:
                raise Fail("no event within %.0f s" % timeout)
            try:
                self._recv(left)
            except socket.timeout:
                raise Fail("no event within %.0f s" % timeout)
            except EOFError:
                self._dechunk()
                if "\n\n" not in self.text:
                    return None
            self._dechunk()
        block, self.text = self.text.split("\n\n", 1)
        f = {}
        for line in block.split("\n"):
            k, _, v = line.partition(":")
            f[k or "comment"] = v[1:] if v.startswith(" ") else v
        if "data" in f:
            f["data"] = json.loads(f["data"])
        return f

    def until(self, pred, timeout, what):
        end = time.monotonic() + timeout
        seen = []
        while time.monotonic() < end:
            try:
                e = self.next(end - time.monotonic())
            except Fail:
                break
            if e is None:
                raise Fail("%s: the stream ended; seen %s" % (what, seen[-5:]))
            seen.append(e)
            if pred(e):
                return e, seen
        raise Fail("%s: not within %.0f s; seen %s" % (what, timeout, [(e.get("event"), e.get("id"), e.get("data")) for e in seen if e.get("event") != "telemetry"][-8:]))

    def close(self):
        self.s.close()


def post(addr, path, tok, body):
    import urllib.request
    req = urllib.request.Request("http://%s%s" % (addr, path), data=json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + tok,
                                          "Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, json.loads(r.read())


def run(tmp):
    t0 = time.monotonic()
    spath = os.path.join(tmp, "events.json")
    with open(spath, "w") as f:
        json.dump(scenario(), f)
    with DerSim(spath) as sim:
        assets = []
        for d in sim.config("ev-1")["devices"]:
            a = {"asset_id": d["asset_id"], "type": d["type"]}
            if d["type"] == "battery":
                a.update(capacity_wh=d["capacity_wh"], min_power_w=-d["max_charge_w"],
                         max_power_w=d["max_discharge_w"])
            assets.append(a)
        inv = os.path.join(tmp, "inventory.json")
        with open(inv, "w") as f:
            json.dump({"sites": [{"site_id": "ev-1", "gateways": ["gw-ev-1"],
                                  "assets": assets}]}, f)
        db = os.path.join(tmp, "headend.db")
        viewer, operator = token(db, "watcher", "viewer"), token(db, "op", "operator")
        he = Proc([HEADEND, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
                   "--db", db, "--inventory", inv, "--auth", "--http-max-per-ip", "0",
                   "--http-max-event-streams", str(CAP)], "headend", tmp, ready=" ready")
        kv = dict(f.split("=", 1) for f in he.ready_line.split() if "=" in f)
        http = kv["http"]

        s = Stream(http)
        check(s.status == 401, "no token: %s" % s.status)
        s.close()
        a = Stream(http, viewer, "?keepalive=1")
        check(a.status == 200 and a.headers["content-type"] == "text/event-stream",
              "stream: %s %s" % (a.status, a.headers))
        hello = a.next()
        check(hello.get("retry") == "2000" and hello.get("event") == "hello"
              and hello["data"]["resumed"] is False, "first block %s" % hello)
        ka = a.next(3)
        check(ka == {"comment": "keepalive"}, "a keepalive comment, got %s" % ka)
        print("ok: 401 without a token; viewer stream: retry: 2000, hello, keepalive comment")

        cfg = sim.config("ev-1")
        cfg["gateway_id"] = "gw-ev-1"
        cfg["uplink"] = {"backoff_initial": "200ms", "backoff_max": "1s"}
        cpath = os.path.join(tmp, "ev-1.json")
        with open(cpath, "w") as f:
            json.dump(cfg, f)
        b = Stream(http, viewer, "?site=ev-1")
        check(b.next()["event"] == "hello", "hello on b")
        Proc([GATEWAY, "-c", cpath, "--headend", kv["grpc"]], "gw-ev-1", tmp)
        tel, _ = b.until(lambda e: e.get("event") == "telemetry", 15, "a telemetry event")
        d = tel["data"]
        check(d["site_id"] == "ev-1" and d["asset_id"].startswith("ev-1-") and "site" in d
              and "grid_w" in d["site"] and int(tel["id"]) > 0, "telemetry %s" % tel)
        _, seen = a.until(lambda e: e.get("event") == "sites", 5, "a sites event")
        check(not [e for e in seen if e.get("event") == "telemetry"],
              "telemetry on a stream that watches no site")
        print("ok: telemetry event on ?site=ev-1 (%s, id %s); a sites event on the other"
              % (d["asset_id"], tel["id"]))

        st, r = post(http, "/dispatch", operator, {"site_id": "ev-1", "mw": -0.002, "ttl_s": 60})
        check(st == 202, "dispatch %s %s" % (st, r))
        sp = r["setpoint_id"]
        states = []
        first = None
        while "APPLIED" not in states:
            e, _ = b.until(lambda e: e.get("event") == "dispatch"
                           and e["data"]["setpoint_id"] == sp, 10, "dispatch %s" % sp)
            first = first or e["id"]
            states.append(e["data"]["state"])
            check(len(states) < 6, "states %s" % states)
        check(states[-3:] == ["SENT", "RECEIVED", "APPLIED"] or states == ["QUEUED", "SENT",
              "RECEIVED", "APPLIED"], "lifecycle %s" % states)
        print("ok: dispatch %s on the stream: %s" % (sp, " -> ".join(states)))

        c = Stream(http, viewer, "?site=ev-1", last_id=int(first) - 1)
        h = c.next()
        check(h["event"] == "hello" and h["data"]["resumed"] is True, "resume hello %s" % h)
        e, _ = c.until(lambda e: e.get("event") == "dispatch", 5, "replayed dispatch")
        check(e["id"] == first, "replay starts after Last-Event-ID: %s vs %s" % (e["id"], first))
        c.close()
        print("ok: Last-Event-ID resumes (hello resumed:true, replay from id %s)" % first)

        # the closed stream c frees its slot when the daemon next writes to it (its site's
        # next telemetry point, within a second): a 503 before that is retried
        streams = [a, b]
        end = time.monotonic() + 10
        while len(streams) < CAP:
            n = Stream(http, viewer)
            if n.status == 503 and time.monotonic() < end:
                n.close()
                time.sleep(0.2)
                continue
            check(n.status == 200, "stream %d: %s" % (len(streams) + 1, n.status))
            streams.append(n)
        x = Stream(http, viewer)
        check(x.status == 503 and x.headers.get("retry-after") == "5",
              "stream %d: %s %s" % (CAP + 1, x.status, x.headers))
        x.close()
        print("ok: %d streams open, the next one 503 with Retry-After" % CAP)

        t = time.monotonic()
        he.p.send_signal(signal.SIGTERM)
        try:
            rc = he.p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            raise Fail("der-headend still running 15 s after SIGTERM with %d streams" % CAP)
        dt = time.monotonic() - t
        check(rc == 0, "exit status %s: %s" % (rc, he.log()))
        ended = 0
        for s in streams:
            try:
                while s.next(3) is not None:
                    pass
                ended += 1
            except (Fail, OSError):
                pass
            s.close()
        check(ended == CAP, "streams ended at shutdown: %d of %d" % (ended, CAP))
        print("ok: SIGTERM with %d open streams: exit 0 in %.2f s, every stream ended"
              % (CAP, dt))
    print("ok: events in %.1f s" % (time.monotonic() - t0))


def main():
    tmp = tempfile.mkdtemp(prefix="derloop-events-")
    try:
        run(tmp)
    except Fail as e:
        print("FAIL: %s" % e, file=sys.stderr)
        print("logs: %s" % tmp, file=sys.stderr)
        return 1
    finally:
        for p in procs:
            p.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
