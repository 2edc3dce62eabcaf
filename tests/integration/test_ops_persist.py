#!/usr/bin/python3
"""Alerts and commands survive a der-headend restart (docs/operations.md, "Alerts" and
"Commands"), on a SQLite file and then on PostgreSQL (a throwaway cluster of
test_headend_pg.py's, DATABASE_URL; skipped when no server is installed), a python3-grpcio agent on loopback that registers gw-1 with
commands and answers each Command RECEIVED then APPLIED:
- a command's lifecycle (SENT, RECEIVED, APPLIED with its acks) is in GET /commands/:id after
  the restart, and in `der-headend export` (commands.jsonl);
- a dispatch_failed alert acknowledged (cleared, acked_by), and the gateway_offline alert
  raised when the agent left, are in GET /alerts after the restart with the same ids and
  states; the still-active offline alert keeps its id (not raised anew) and clears when the
  agent registers again; new alerts take ids after the stored ones;
- an asset_fault alert (b2 reported FAULT with status "ok") stays active with its id after the
  restart (the operating state is read back from the stored sample, not guessed from the
  status), and clears after a restart whose inventory no longer has b2."""

import glob
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dersim import check, wait_until  # noqa: E402
import test_e2e_headend as e2e  # noqa: E402

sys.path.insert(0, os.path.join(e2e.ROOT, e2e.BUILD, "gen", "py"))
import grpc  # noqa: E402
from proto.der.v1 import agent_pb2 as pb  # noqa: E402
from proto.der.v1 import agent_pb2_grpc as pbg  # noqa: E402


class Agent:
    """gw-1 for site s1 (battery b1): Register with commands, every Command acked."""

    def __init__(self, grpc_target):
        self.q = queue.Queue()
        self.seq = 0
        self.ch = grpc.insecure_channel(grpc_target)
        self.send(register=pb.Register(gateway_id="gw-1", site_id="s1", commands=True,
                                       assets=[pb.AssetInfo(asset_id="b1", type=1),
                                               pb.AssetInfo(asset_id="b2", type=1)]))
        self.call = pbg.HeadendStub(self.ch).Connect(self._gen())
        self.registered = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        check(self.registered.wait(5), "no RegisterResult")

    def send(self, **body):
        self.seq += 1
        self.q.put(pb.AgentMessage(seq=self.seq, sent_ms=int(time.time() * 1000), **body))

    def _gen(self):
        while True:
            m = self.q.get()
            if m is None:
                return
            yield m

    def _read(self):
        try:
            for m in self.call:
                if m.HasField("register_result"):
                    self.registered.set()
                elif m.HasField("command"):
                    cid = m.command.command_id
                    self.send(command_ack=pb.CommandAck(command_id=cid, state=1))
                    self.send(command_ack=pb.CommandAck(command_id=cid, state=2,
                                                        detail="written"))
        except grpc.RpcError:
            pass

    def close(self):
        self.q.put(None)
        self.call.cancel()
        self.ch.close()


def headend(tmp, db, inv):
    args = [a % 0 if "%d" in a else a for a in e2e.HEADEND_ARGS]
    args = [db if a == ":memory:" else a for a in args]
    args += ["--inventory", inv, "--alert-eval", "200ms", "--alert-offline-after", "1s",
             "--dispatch-ttl-min-s", "1", "--alert-soc-reserve-pct", "0"]
    p = e2e.Proc([e2e.HEADEND] + args, "headend-%d" % time.monotonic_ns(), tmp, ready=" ready")
    kv = dict(f.split("=", 1) for f in p.ready_line.split() if "=" in f)
    he = e2e.Headend.__new__(e2e.Headend)
    he.proc, he.kind, he.grpc, he.http, he.inventory = p, "der-headend", kv["grpc"], \
        "http://" + kv["http"], inv
    return he


def alerts(he, q=""):
    code, r = he.get("/alerts" + q)
    check(code == 200, "GET /alerts: %s %s" % (code, r))
    return {a["id"]: a for a in r["alerts"]}


def write_inventory(path, assets):
    with open(path, "w") as f:
        json.dump({"sites": [{"site_id": "s1", "gateways": ["gw-1"], "assets": [
            {"asset_id": a, "type": "battery", "capacity_wh": 10000,
             "min_power_w": -5000, "max_power_w": 5000} for a in assets]}]}, f)


def run(tmp, store):
    inv = os.path.join(tmp, "inventory.json")
    write_inventory(inv, ["b1", "b2"])
    db = os.path.join(tmp, "headend.db")
    he = headend(tmp, db, inv)
    ag = Agent(he.grpc)
    code, c = he.post("/assets/b1/commands", {"command": "charge", "value": 1500, "ttl_s": 60})
    check(code == 202, "command: %s %s" % (code, c))
    cid = c["command_id"]
    done = wait_until(lambda: he.get("/commands/" + cid)[1].get("state") == "APPLIED" and
                      he.get("/commands/" + cid)[1], 5)
    check(done and [a["state"] for a in done["acks"]] == ["RECEIVED", "APPLIED"],
          "command: %s" % he.get("/commands/" + cid)[1])
    ag.send(telemetry=pb.Telemetry(asset_id="b2", ts_ms=int(time.time() * 1000), telemetry_seq=1,
                                   power_w=0, status="ok", state="FAULT"))
    fault = wait_until(lambda: [a for a in alerts(he, "?state=active").values()
                                if a["rule"] == "asset_fault"], 5)
    check(fault and fault[0]["subject"] == "b2", "no asset_fault for b2: %s" % alerts(he))
    time.sleep(0.3)  # the telemetry flush (the sample must be in the store)
    ag.close()  # the agent leaves: gateway_offline after 1 s
    code, d = he.post("/dispatch", {"site_id": "s1", "mw": 0.001, "ttl_s": 1})
    check(code == 202, "dispatch: %s %s" % (code, d))
    ev = wait_until(lambda: [a for a in alerts(he, "?state=active").values()
                             if a["rule"] == "dispatch_failed"], 5)
    check(ev, "no dispatch_failed: %s" % alerts(he))
    code, r = he.post("/alerts/%d/ack" % ev[0]["id"], {})
    check(code == 200 and r["state"] == "cleared", "ack: %s %s" % (code, r))
    off = wait_until(lambda: [a for a in alerts(he, "?state=active").values()
                              if a["rule"] == "gateway_offline"], 5)
    check(off, "no gateway_offline: %s" % alerts(he))
    before = alerts(he, "?state=all")
    he.proc.stop()
    print("ok: before the restart: command %s APPLIED; alerts %s" %
          (cid, sorted((a["id"], a["rule"], a["state"]) for a in before.values())))

    he = headend(tmp, db, inv)
    rec = he.get("/commands/" + cid)[1]
    check(rec.get("state") == "APPLIED" and rec["acks"] == done["acks"] and
          rec["value"] == 1500 and rec["command"] == "charge", "after restart: %s" % rec)
    after = alerts(he, "?state=all")
    for i, a in before.items():
        b = after.get(i)
        check(b and (b["rule"], b["state"], b["acked_ms"], b["acked_by"], b["raised_ms"]) ==
              (a["rule"], a["state"], a["acked_ms"], a["acked_by"], a["raised_ms"]),
              "alert %d after the restart: %s, before: %s" % (i, b, a))
    time.sleep(0.6)  # a few evaluations: the offline alert still holds, not raised anew
    now = alerts(he, "?state=active")
    check([a["id"] for a in now.values() if a["rule"] == "gateway_offline"] == [off[0]["id"]],
          "offline after the restart: %s" % now)
    check([a["id"] for a in now.values() if a["rule"] == "asset_fault"] == [fault[0]["id"]],
          "asset_fault after the restart: %s" % now)
    print("ok: after the restart: command APPLIED with its acks; alerts kept ids, states, acks")
    ag = Agent(he.grpc)
    check(wait_until(lambda: not [a for a in alerts(he, "?state=active").values()
                                  if a["rule"] == "gateway_offline"], 5), "offline not cleared")
    code, d = he.post("/dispatch", {"site_id": "s1", "mw": 0.001, "ttl_s": 1})
    ag.close()
    new = wait_until(lambda: [a for a in alerts(he, "?state=all").values()
                              if a["id"] > max(before)], 6)
    check(new, "no new alert: %s" % alerts(he))
    print("ok: offline cleared on Register; new alerts numbered after the stored ones (%s)" %
          sorted(a["id"] for a in new))
    he.proc.stop()
    write_inventory(inv, ["b1"])  # b2 leaves the inventory: its alert has no subject left
    he = headend(tmp, db, inv)
    gone = wait_until(lambda: alerts(he, "?state=all").get(fault[0]["id"], {}).get("state") ==
                      "cleared", 5)
    check(gone, "asset_fault of b2 (gone from the inventory): %s" % alerts(he, "?state=all"))
    he.proc.stop()
    write_inventory(inv, ["b1", "b2"])
    print("ok: asset_fault kept its id across the restart; cleared once b2 left the inventory")

    out = os.path.join(tmp, "exp")
    r = subprocess.run([e2e.HEADEND, "export", "--site", "s1", "--from", "2020-01-01T00:00:00Z",
                        "--to", "2100-01-01T00:00:00Z", "--inventory", inv, "--db", db,
                        "--out", out], capture_output=True, text=True, timeout=20)
    check(r.returncode == 0, "export: %s %s" % (r.returncode, r.stderr))
    with open(os.path.join(out, "commands.jsonl")) as f:
        rows = [json.loads(x) for x in f]
    check([x["command_id"] for x in rows] == [cid] and rows[0]["state"] == "APPLIED" and
          "session_id" not in rows[0], "commands.jsonl: %s" % rows)
    print("ok: der-headend export writes commands.jsonl")
    print("ok: %s store" % store)


def main():
    pg = []

    def body(tmp):
        run(tmp, "sqlite")
        if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
            print("skip: no PostgreSQL server installed")
            return
        from test_headend_pg import Cluster
        pg.append(Cluster())
        pg[0].start()
        pg[0].psql("CREATE DATABASE derloop", db="postgres")
        os.environ["DATABASE_URL"] = pg[0].url
        shutil.rmtree(tmp, ignore_errors=True)
        os.mkdir(tmp)
        run(tmp, "postgresql")
        check(pg[0].psql("SELECT count(*) FROM commands") == ["1"], "PostgreSQL commands")

    def cleanup():
        os.environ.pop("DATABASE_URL", None)
        for c in pg:
            c.cleanup()
    return e2e.run_main("persistence", "derloop-persist-", body, cleanup=(cleanup,))


if __name__ == "__main__":
    sys.exit(main())
