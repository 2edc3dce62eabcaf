#!/usr/bin/python3
"""End to end on loopback: `der-sim serve` (scenarios/fleet-site.json, 11 assets, 10 devices),
`der-gateway --headend`, and a headend. One stream carries every asset; telemetry differs per
asset; a dispatch to one asset changes only that asset; a site dispatch splits
deterministically and sums to the request; a setpoint delivered twice is applied once; the
headend killed, the site keeps its strategy and spools, then reconnects and replays in order;
the gateway killed, /agents shows it disconnected within the keepalive time; the legacy
single-asset mode works against the same headend.

The headend is build/bin/der-headend (a failure to start it fails the test);
DERLOOP_HEADEND=fake runs the python3-grpcio stand-in tests/integration/lib/fake_headend.py
instead, DERLOOP_HEADEND=auto falls back to it (for debugging the gateway alone). Only 127.0.0.1; everything started is stopped on any exit."""

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from dersim import BUILD, ROOT, DerSim, Fail, check, wait_until  # noqa: E402

SCENARIO = "scenarios/fleet-site.json"
GATEWAY = os.path.join(ROOT, BUILD, "bin", "der-gateway")
HEADEND = os.path.join(ROOT, BUILD, "bin", "der-headend")
FAKE = os.path.join(ROOT, "tests", "integration", "lib", "fake_headend.py")
# How der-headend is started: in-memory store, any free ports (the headend prints them).
HEADEND_ARGS = ["--grpc-listen", "127.0.0.1:%d", "--http-listen", "127.0.0.1:0", "--db", ":memory:",
                "--keepalive-time", "1s", "--keepalive-timeout", "1s",
                "--min-ping-interval", "500ms"]
KEEPALIVE_S = 1.0
BATTERIES = {"bat-1": 20000, "bat-2": 10000, "bat-3": 10000, "bat-4": 5000}

procs = []


class Proc:
    def __init__(self, cmd, name, tmp, ready=None, timeout=8.0):
        self.name = name
        self.log_path = os.path.join(tmp, name + ".log")
        self.logf = open(self.log_path, "wb")
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE if ready else self.logf,
                                  stderr=self.logf, cwd=ROOT)
        procs.append(self)
        self.ready_line = None
        if ready:
            end = time.monotonic() + timeout
            buf = b""
            while time.monotonic() < end and self.ready_line is None:
                r, _, _ = select.select([self.p.stdout], [], [], 0.2)
                if r:
                    chunk = os.read(self.p.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    buf += chunk
                    for line in buf.decode(errors="replace").splitlines():
                        if line.endswith(ready):
                            self.ready_line = line
            if self.ready_line is None:
                self.p.kill()
                self.p.wait()
                raise Fail("%s: no ready line (status %s): %s" % (name, self.p.poll(), self.log()))

    def log(self):
        if not self.logf.closed:
            self.logf.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")[-3000:]

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=3.0):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if self.p.stdout:
            self.p.stdout.close()
        self.logf.close() if not self.logf.closed else None
        return self.p.returncode


class Headend:
    def __init__(self, tmp, grpc_port=0, kind=None, inventory=None):
        kind = kind or os.environ.get("DERLOOP_HEADEND", "real")  # CI: the real der-headend
        self.proc = None
        if kind in ("auto", "real"):
            args = [a % grpc_port if "%d" in a else a for a in HEADEND_ARGS]
            args += ["--inventory", inventory]
            try:
                self.proc = Proc([HEADEND] + args, "headend", tmp, ready=" ready", timeout=5)
                self.kind = "der-headend"
            except Fail as e:
                if kind == "real":
                    raise
                print("note: der-headend not usable (%s); using fake_headend.py" %
                      str(e).splitlines()[0][:160])
        if self.proc is None:
            self.proc = Proc(["/usr/bin/python3", FAKE, "--grpc-listen",
                              "127.0.0.1:%d" % grpc_port, "--http-listen", "127.0.0.1:0"],
                             "fake-headend", tmp, ready=" ready")
            self.kind = "fake"
        kv = dict(f.split("=", 1) for f in self.proc.ready_line.split() if "=" in f)
        self.grpc = kv["grpc"]
        self.http = "http://" + kv["http"]
        self.inventory = inventory

    def get(self, path, timeout=2.0):
        try:
            with urllib.request.urlopen(self.http + path, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def post(self, path, obj, timeout=2.0):
        req = urllib.request.Request(self.http + path, data=json.dumps(obj).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def telemetry(self, asset):
        code, t = self.get("/telemetry/" + asset)
        return t if code == 200 else None

    def dispatch(self, sid):
        code, d = self.get("/dispatch/" + sid)
        return d if code == 200 else None

    def agent_assets(self, gateway_id):
        """{asset_id: entry} of the assets /agents shows served by gateway_id and connected."""
        code, rows = self.get("/agents")
        if code != 200:
            return {}
        return {r["asset_id"]: r for r in rows
                if r.get("gateway_id") == gateway_id and r.get("connected")}

    def connected(self, gateway_id):
        return bool(self.agent_assets(gateway_id))

    def samples(self, asset):
        code, r = self.get("/telemetry/%s?from=0" % asset)
        return r.get("samples", []) if code == 200 else []


def write_inventory(sim, tmp):
    """The headend's assets file: the fleet site, the gateways the tests start, its devices."""
    cfg = sim.config("fleet")
    assets = []
    for d in cfg["devices"]:
        a = {"asset_id": d["asset_id"], "type": d["type"]}
        if d["type"] == "battery":
            a.update(capacity_wh=d["capacity_wh"], min_power_w=-d["max_charge_w"],
                     max_power_w=d["max_discharge_w"])
        assets.append(a)
    inv = {"sites": [{"site_id": "fleet", "gateways": ["gw-fleet", "gw-outage", "gw-legacy"],
                      "assets": assets}]}
    path = os.path.join(tmp, "inventory.json")
    with open(path, "w") as f:
        json.dump(inv, f)
    return path


def gateway_config(sim, tmp, name, strategy, params=None, uplink=None):
    cfg = sim.config("fleet")
    cfg["strategy"] = strategy
    cfg["params"] = params or {}
    cfg["gateway_id"] = "gw-" + name
    cfg["uplink"] = dict({"keepalive_time": "1s", "keepalive_timeout": "1s",
                          "backoff_initial": "200ms", "backoff_max": "1s"}, **(uplink or {}))
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def dispatch(he, body):
    code, r = he.post("/dispatch", body)
    check(code in (200, 201, 202), "POST /dispatch %s: %s %s" % (body, code, r))
    return r.get("setpoint_id") or r.get("id")


FINAL = ("APPLIED", "REJECTED", "EXPIRED", "FAILED")


def final_ack(he, sid, timeout=5.0):
    """The dispatch record once it reached a final state."""
    d = wait_until(lambda: (he.dispatch(sid) or {}).get("state") in FINAL and he.dispatch(sid),
                   timeout)
    check(d, "setpoint %s: no final ack within %.0f s: %s" % (sid, timeout, he.dispatch(sid)))
    return d


def ack_states(d):
    return [a["state"] for a in d.get("acks", [])]


def setpoint_of(he, asset):
    t = he.telemetry(asset)
    return None if not t else t.get("setpoint_w")


def test_fleet(sim, he, tmp):
    cfgp = gateway_config(sim, tmp, "fleet", "null")
    gw = Proc([GATEWAY, "-c", cfgp, "--headend", he.grpc], "gateway", tmp)
    assets = list(sim.site("fleet")["units"].keys())
    check(len(assets) >= 10, "the fleet site should have >= 10 devices, has %d" % len(assets))
    served = wait_until(lambda: len(he.agent_assets("gw-fleet")) == len(assets) and
                        he.agent_assets("gw-fleet"), 8)
    check(served, "gw-fleet should serve all %d assets, /agents: %s; gateway log: %s"
          % (len(assets), he.agent_assets("gw-fleet"), gw.log()))
    sessions = set(r.get("session_id") for r in served.values())
    check(len(sessions) == 1 and None not in sessions,
          "one stream (one session) should carry every asset, sessions %s" % sessions)
    # a few cycles in: the first sample is taken before the physics has stepped
    # (telemetry_seq starts at the gateway's start time in ms: count from the first seen)
    ok = wait_until(lambda: all(he.telemetry(x) for x in assets), 8)
    check(ok, "telemetry missing for some asset: %s" %
          [x for x in assets if not he.telemetry(x)])
    first = {x: he.telemetry(x)["telemetry_seq"] for x in assets}
    ok = wait_until(lambda: all(he.telemetry(x)["telemetry_seq"] >= first[x] + 2
                                for x in assets), 8)
    check(ok, "telemetry stalled for some asset: %s" %
          [x for x in assets if he.telemetry(x)["telemetry_seq"] < first[x] + 2])
    powers = {x: he.telemetry(x)["power_w"] for x in assets}
    check(len(set(round(p, 3) for p in powers.values())) >= 5,
          "telemetry should differ per asset: %s" % powers)
    print("ok: one stream registers %d assets; telemetry per asset (%d distinct power values)"
          % (len(assets), len(set(powers.values()))))

    # a dispatch to one asset changes only that asset
    before = {b: setpoint_of(he, b) for b in BATTERIES}
    sid = dispatch(he, {"asset_id": "bat-3", "mw": -0.0025, "ttl_s": 60})
    d = final_ack(he, sid)
    states = ack_states(d)
    check(d["state"] == "APPLIED" and states[0] == "RECEIVED" and "APPLIED" in states,
          "acks %s" % d)
    alloc = d["allocations"]
    check(len(alloc) == 1 and alloc[0]["asset_id"] == "bat-3" and
          abs(alloc[0]["power_w"] + 2500) < 1e-6, "allocations %s" % alloc)
    check(wait_until(lambda: setpoint_of(he, "bat-3") == -2500, 5),
          "bat-3 setpoint_w %s" % setpoint_of(he, "bat-3"))
    time.sleep(1.2)
    for b in ("bat-1", "bat-2", "bat-4"):
        now = setpoint_of(he, b)
        check(now == before[b] or (now != now and before[b] != before[b]),
              "%s changed from %s to %s on a dispatch to bat-3" % (b, before[b], now))
    print("ok: asset dispatch: RECEIVED then APPLIED bat-3=-2500 W, other batteries unchanged")

    # a setpoint delivered twice is applied once (fake headend only: its test hook)
    if he.kind == "fake":
        sid = dispatch(he, {"asset_id": "bat-2", "mw": -0.001, "ttl_s": 60, "repeat": 2})
        final_ack(he, sid)
        time.sleep(1.5)
        acks = ack_states(he.dispatch(sid))
        check(acks.count("APPLIED") == 1, "delivered twice: acks %s" % acks)
        check(gw.log().count("event=setpoint_applied setpoint_id=%s " % sid) == 1,
              "applied more than once")
        print("ok: delivered twice, applied once (acks %s)" % acks)

    # a site dispatch splits deterministically (by capacity) and sums to the request
    results = []
    for _ in range(2):
        sid = dispatch(he, {"site_id": "fleet", "mw": -0.009, "ttl_s": 60})
        d = final_ack(he, sid)
        check(d["state"] == "APPLIED", "site dispatch %s" % d)
        results.append({x["asset_id"]: x["power_w"] for x in d["allocations"]})
    check(results[0] == results[1], "site split not deterministic: %s" % results)
    total = sum(results[0].values())
    check(abs(total + 9000) < 1e-6, "site split sums to %s, not -9000: %s" % (total, results))
    # bat-3 still holds its own command (an asset request beats a site request): the site's
    # power goes to the other three, by capacity 20:10:5 kWh
    check("bat-3" not in results[0], "bat-3 is not part of the site split: %s" % results[0])
    check(results[0] == {"bat-1": -5143, "bat-2": -2571, "bat-4": -1286},
          "split by capacity with largest-remainder rounding: %s" % results[0])
    print("ok: site dispatch -9000 W split %s, sum %.3f, identical twice" % (results[0], total))

    # more than the batteries can give: APPLIED, and the detail says how much of it (issue 14)
    sid = dispatch(he, {"site_id": "fleet", "mw": 0.023, "ttl_s": 5})
    d = final_ack(he, sid)
    got = sum(x["power_w"] for x in d["allocations"])
    check(d["state"] == "APPLIED" and d["detail"].startswith("partial: %.0f of 23000 W (" % got)
          and 0 < got < 23000, "partial site dispatch: %s" % d)
    print("ok: a 23 kW site dispatch, bat-3 held apart, is acked %s \"%s\"" % (d["state"], d["detail"]))

    # unknown asset and non-finite power are rejected with the reason
    sid = dispatch(he, {"asset_id": "bat-1", "mw": -0.001, "ttl_s": 60,
                        "expires_ms": 1000}) if he.kind == "fake" else None
    if sid:
        d = final_ack(he, sid)
        check(d["state"] == "EXPIRED", "expired setpoint: %s" % d)
        print("ok: an expired setpoint is answered EXPIRED (%s)" % d["detail"])
    return gw


def test_headend_outage(sim, tmp, he):
    """Charge strategy: it keeps charging while the headend is away; telemetry is spooled and
    replayed in order after the reconnect."""
    spool = os.path.join(tmp, "spool")
    cfgp = gateway_config(sim, tmp, "outage", "charge", {"power_w": 4500},
                          {"spool_dir": spool})
    gw = Proc([GATEWAY, "-c", cfgp, "--headend", he.grpc], "gateway-outage", tmp)
    check(wait_until(lambda: he.connected("gw-outage"), 8), "gw-outage not connected")
    check(wait_until(lambda: setpoint_of(he, "bat-1") == -2000, 6),
          "charge split: bat-1 setpoint %s" % setpoint_of(he, "bat-1"))
    seq_before = he.telemetry("bat-1")["telemetry_seq"]
    grpc_port = int(he.grpc.rsplit(":", 1)[1])
    t_kill = time.monotonic()
    he.proc.stop(signal.SIGKILL)
    check(wait_until(lambda: "event=disconnected" in gw.log(), 5),
          "no disconnect logged: %s" % gw.log())
    line = [x for x in gw.log().splitlines() if "event=disconnected" in x][-1]
    check("reason=" in line, "disconnect without a reason: %s" % line)
    time.sleep(3)
    check(gw.alive(), "the gateway died with its headend")
    he2 = Headend(tmp, grpc_port=grpc_port, kind="fake" if he.kind == "fake" else "real",
                  inventory=he.inventory)
    down = time.monotonic() - t_kill
    check(wait_until(lambda: he2.connected("gw-outage"), 8),
          "no reconnect: %s" % gw.log())
    t = wait_until(lambda: (he2.telemetry("bat-1") or {}).get("telemetry_seq", 0) >
                   seq_before + 3 and he2.telemetry("bat-1"), 8)
    check(t, "no telemetry after the reconnect")
    check(t["setpoint_w"] == -2000, "strategy not kept: bat-1 setpoint %s" % t["setpoint_w"])
    seqs = [x["telemetry_seq"] for x in he2.samples("bat-1")]
    if seqs:
        check(seqs == sorted(seqs), "replay out of order: %s" % seqs[:20])
        check(seqs[0] <= seq_before + 1,
              "the outage was not replayed: first seq %d, before the kill %d" %
              (seqs[0], seq_before))
        check(all(b - a == 1 for a, b in zip(seqs, seqs[1:])),
              "gaps in the replay: %s" % seqs[:40])
    print("ok: headend down %.1f s: strategy kept (bat-1 -2000 W), disconnect logged (%s), "
          "reconnected, spool replayed in order" % (down, line.split("reason=")[1][:60]))
    return gw, he2


def test_gateway_killed(he, gw):
    gw.stop(signal.SIGKILL)
    t0 = time.monotonic()
    ok = wait_until(lambda: not he.connected("gw-outage"), 2 * KEEPALIVE_S + 1.0)
    dt = time.monotonic() - t0
    check(ok, "/agents still shows the killed gateway connected after %.1f s" % dt)
    print("ok: gateway killed: /agents shows it disconnected after %.2f s" % dt)


def test_legacy(sim, tmp, he):
    cfgp = gateway_config(sim, tmp, "legacy", "null")
    gw = Proc([GATEWAY, "-c", cfgp, "--headend", he.grpc, "--legacy"], "gateway-legacy", tmp)
    a = wait_until(lambda: he.agent_assets("gw-legacy"), 8)
    check(a, "legacy gateway not connected: %s" % gw.log())
    check(list(a) == ["bat-1"], "legacy should serve its primary asset only: %s" % list(a))
    sid = dispatch(he, {"asset_id": "bat-1", "mw": -0.0015, "ttl_s": 60})
    d = final_ack(he, sid)
    check(d["state"] == "APPLIED" and d["allocations"][0]["asset_id"] == "bat-1",
          "legacy dispatch: %s" % d)
    check(wait_until(lambda: setpoint_of(he, "bat-1") == -1500, 5), "legacy telemetry")
    gw.stop()
    print("ok: legacy single-asset gateway: primary bat-1 registered, dispatched, reported")


def run_main(what, prefix, body, fails=(), cleanup=()):
    """The harness of every test built on these processes: body(tmp) in a fresh directory; on
    a failure (Fail or one of `fails`) each process's log tail; at the end every process
    killed, each of `cleanup` called and the directory removed. Returns the exit status."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    t0 = time.monotonic()
    try:
        body(tmp)
        print("all %s tests passed in %.1f s" % (what, time.monotonic() - t0))
        return 0
    except (Fail,) + tuple(fails) as e:
        print("FAIL: %s" % e)
        for p in procs:
            print("---- %s log tail:\n%s" % (p.name, p.log()[-2500:]))
        return 1
    finally:
        for p in procs:
            p.stop(signal.SIGKILL, timeout=2)
        for c in cleanup:
            c()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    def body(tmp):
        with DerSim(SCENARIO) as sim:
            he = Headend(tmp, inventory=write_inventory(sim, tmp))
            print("headend: %s grpc=%s" % (he.kind, he.grpc))
            gw = test_fleet(sim, he, tmp)
            gw.stop()
            check(gw.p.returncode == 0, "der-gateway exit status %s" % gw.p.returncode)
            gw2, he2 = test_headend_outage(sim, tmp, he)
            test_gateway_killed(he2, gw2)
            test_legacy(sim, tmp, he2)
    return run_main("e2e headend", "derloop-e2e-", body)


if __name__ == "__main__":
    sys.exit(main())
