#!/usr/bin/python3
"""der-headend against a peer we did not write: a python3-grpcio gateway (stubs built from
proto/der/v1/agent.proto into $BUILD/gen/py) registers, sends telemetry, receives a dispatch
posted through REST, acks RECEIVED then APPLIED with allocations; GET /dispatch/:id shows
APPLIED with them. Then the headend restarts on the same SQLite file and keeps its history.
Also home of the small Headend/Gateway helpers the other headend tests import."""

import json
import os
import queue
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
sys.path.insert(0, os.path.join(BUILD, "gen", "py"))

import grpc  # noqa: E402
from proto.der.v1 import agent_pb2 as pb  # noqa: E402
from proto.der.v1 import agent_pb2_grpc as pbg  # noqa: E402

INVENTORY = {
    "sites": [
        {"site_id": "site-a", "gateways": ["gw-a"], "assets": [
            {"asset_id": "a-bat", "type": "battery", "capacity_wh": 2e6,
             "min_power_w": -2e6, "max_power_w": 2e6},
            {"asset_id": "a-pv", "type": "pv", "min_power_w": 0, "max_power_w": 1e6}]},
        {"site_id": "site-b", "gateways": ["gw-b", "gw-b2"], "assets": [
            {"asset_id": "b-bat", "type": "battery", "capacity_wh": 1e6,
             "min_power_w": -1e6, "max_power_w": 1e6}]},
    ]
}


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


class Headend:
    """A der-headend process on 127.0.0.1, ports picked by the kernel."""

    def __init__(self, tmp, args=(), db=None, inventory=INVENTORY):
        self.tmp = tmp
        self.inv = os.path.join(tmp, "inventory.json")
        with open(self.inv, "w") as f:
            json.dump(inventory, f)
        self.db = db or os.path.join(tmp, "headend.db")
        self.args = list(args)
        self.log = open(os.path.join(tmp, "headend.log"), "ab")
        self.start()

    def start(self):
        cmd = [os.path.join(BUILD, "bin", "der-headend"), "--grpc-listen", "127.0.0.1:0",
               "--http-listen", "127.0.0.1:0", "--inventory", self.inv, "--db", self.db]
        self.p = subprocess.Popen(cmd + self.args, stdout=subprocess.PIPE, stderr=self.log)
        r, _, _ = select.select([self.p.stdout], [], [], 10)
        check(r, "der-headend did not print its ready line within 10 s")
        line = self.p.stdout.readline().decode().split()
        check(len(line) == 3 and line[2] == "ready", "bad ready line %r" % line)
        self.grpc_port = int(line[0].rsplit(":", 1)[1])
        self.http_port = int(line[1].rsplit(":", 1)[1])

    def http(self, method, path, body=None):
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.http_port, path),
                                     data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def agents(self):
        return {row["asset_id"]: row for row in self.http("GET", "/agents")[1]}

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                return None
        return self.p.returncode

    def logtext(self):
        with open(os.path.join(self.tmp, "headend.log"), "rb") as f:
            return f.read().decode(errors="replace")


class Gateway:
    """A gateway stream written with grpcio: send() queues AgentMessages, the reader thread
    collects HeadendMessages and the final status."""

    def __init__(self, port, options=()):
        self.channel = grpc.insecure_channel("127.0.0.1:%d" % port, options=list(options))
        self.out = queue.Queue()
        self.inbox = queue.Queue()
        self.seq = 0
        self.status = None
        self.done = threading.Event()
        self.call = pbg.HeadendStub(self.channel).Connect(self._requests())
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _requests(self):
        while True:
            m = self.out.get()
            if m is None:
                return
            yield m

    def _read(self):
        try:
            for m in self.call:
                self.inbox.put(m)
            self.status = (grpc.StatusCode.OK, "")
        except grpc.RpcError as e:
            self.status = (e.code(), e.details())
        self.done.set()

    def send(self, **body):
        self.seq += 1
        self.out.put(pb.AgentMessage(seq=self.seq, sent_ms=int(time.time() * 1000), **body))

    def register(self, gateway_id, site_id, assets, primary=""):
        self.send(register=pb.Register(
            gateway_id=gateway_id, site_id=site_id, primary_asset_id=primary,
            software="test-peer", assets=[pb.AssetInfo(asset_id=a) for a in assets]))
        m = self.next(5)
        check(m is not None and m.HasField("register_result"),
              "no RegisterResult (status %r)" % (self.status,))
        return m.register_result

    def telemetry(self, asset_id, power_w, seq, **kw):
        self.send(telemetry=pb.Telemetry(asset_id=asset_id, ts_ms=int(time.time() * 1000),
                                         telemetry_seq=seq, power_w=power_w, online=True, **kw))

    def ack(self, setpoint_id, state, allocations=(), detail=""):
        self.send(setpoint_ack=pb.SetpointAck(
            setpoint_id=setpoint_id, state=state, detail=detail,
            allocations=[pb.Allocation(asset_id=a, power_w=w) for a, w in allocations]))

    def next(self, timeout):
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self):
        self.out.put(None)
        self.call.cancel()
        self.channel.close()


def wait_for(fn, timeout, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def main():
    tmp = tempfile.mkdtemp(prefix="headend-peer-")
    he = Headend(tmp)
    gw = None
    try:
        st, h = he.http("GET", "/healthz")
        check(st == 200 and h["status"] == "ok", "healthz: %r" % (h,))
        st, assets = he.http("GET", "/assets")
        check(st == 200 and len(assets) == 3, "assets: %r" % (assets,))

        gw = Gateway(he.grpc_port)
        rr = gw.register("gw-a", "site-a", ["a-bat", "a-pv"], primary="a-bat")
        check(sorted(rr.accepted) == ["a-bat", "a-pv"] and not rr.rejected,
              "register: %r" % (rr,))
        print("ok: the grpcio gateway registered site-a with 2 assets")

        gw.telemetry("a-bat", -1234.5, 1, storage=pb.StorageDetails(soc=0.5))
        gw.telemetry("", -1000.0, 2)  # no asset_id: the session's primary asset
        gw.telemetry("a-pv", 800.0, 1)
        gw.send(heartbeat=pb.Heartbeat(uptime_ms=1000))
        t = wait_for(lambda: (lambda r: r[1] if r[0] == 200 and r[1]["telemetry_seq"] == 2
                              else None)(he.http("GET", "/telemetry/a-bat")), 5)
        check(t and t["power_w"] == -1000.0 and "lag_ms" in t,
              "latest telemetry (primary asset rule): %r" % (t,))
        print("ok: telemetry arrives; without asset_id it is the primary asset's; lag %.0f ms"
              % t["lag_ms"])

        st, d = he.http("POST", "/dispatch", {"site_id": "site-a", "mw": 1.5, "ttl_s": 60})
        check(st == 202 and d["state"] == "SENT", "POST /dispatch: %d %r" % (st, d))
        sp_id = d["setpoint_id"]
        m = gw.next(5)
        check(m is not None and m.HasField("setpoint"), "no Setpoint on the stream")
        sp = m.setpoint
        check(sp.setpoint_id == sp_id and sp.site_id == "site-a" and sp.power_w == 1.5e6
              and sp.expires_ms > time.time() * 1000, "setpoint: %r" % (sp,))
        gw.ack(sp_id, pb.SetpointAck.RECEIVED)
        gw.ack(sp_id, pb.SetpointAck.APPLIED, [("a-bat", 1.0e6), ("a-pv", 0.5e6)])
        d = wait_for(lambda: (lambda r: r[1] if r[1]["state"] == "APPLIED" else None)(
            he.http("GET", "/dispatch/" + sp_id)), 5)
        check(d, "dispatch never became APPLIED")
        allocs = {a["asset_id"]: a["power_w"] for a in d["allocations"]}
        check(allocs == {"a-bat": 1.0e6, "a-pv": 0.5e6}, "allocations: %r" % (d,))
        check([a["state"] for a in d["acks"]] == ["RECEIVED", "APPLIED"], "acks: %r" % (d,))
        print("ok: dispatch %s via REST -> Setpoint -> RECEIVED -> APPLIED with allocations"
              % sp_id)

        ag = he.agents()
        check(ag["a-bat"]["connected"] and ag["a-bat"]["gateway_id"] == "gw-a"
              and not ag["b-bat"]["connected"], "agents: %r" % (ag,))
        st, metrics = he.http("GET", "/metrics")
        check(st == 200 and "der_headend_gateways_connected 1" in metrics
              and 'der_headend_dispatch_outcomes_total{state="APPLIED"} 1' in metrics,
              "metrics text")
        st, hist = he.http("GET", "/telemetry/a-bat?from=0&to=%d" % (time.time() * 1000 + 1000))
        check(st == 200 and hist["count"] == 2, "history: %r" % (hist,))
        print("ok: /agents, /metrics and telemetry history agree")

        gw.close()
        gw = None
        check(wait_for(lambda: not he.agents()["a-bat"]["connected"], 5),
              "closed stream still connected")
        rc = he.stop(signal.SIGTERM)
        check(rc == 0, "SIGTERM exit status %r" % rc)
        he.start()
        st, d2 = he.http("GET", "/dispatch/" + sp_id)
        check(st == 200 and d2["state"] == "APPLIED" and len(d2["allocations"]) == 2,
              "after restart: %r" % (d2,))
        st, hist2 = he.http("GET", "/telemetry/a-bat?from=0")
        check(hist2["count"] == 2, "history after restart: %r" % (hist2,))
        st, t2 = he.http("GET", "/telemetry/a-bat")
        check(st == 200 and t2["telemetry_seq"] == 2, "latest after restart: %r" % (t2,))
        rs = he.agents()["a-bat"]["recent_sessions"]
        check(rs and rs[0]["gateway_id"] == "gw-a" and rs[0]["ended_ms"], "sessions: %r" % rs)
        st, d3 = he.http("POST", "/dispatch", {"asset_id": "a-bat", "mw": 0.1})
        check(st == 202 and int(d3["setpoint_id"][3:]) > int(sp_id[3:]),
              "setpoint ids must keep growing across restarts: %r" % (d3,))
        print("ok: restarted on the same store: dispatch, telemetry and sessions intact")
        check(he.stop(signal.SIGINT) == 0, "SIGINT exit status")
        print("ok: SIGINT and SIGTERM stop with status 0")
    except Exception:
        print(he.logtext()[-3000:])
        raise
    finally:
        if gw:
            gw.close()
        he.stop(signal.SIGKILL)
    print("PASS")


if __name__ == "__main__":
    main()
