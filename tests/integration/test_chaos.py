#!/usr/bin/python3
"""Chaos: a site (der-sim serve, scenarios/fleet-site.json) with a real der-gateway and a real
der-headend (SQLite file store) in the loop, on 127.0.0.1. At CHAOS_EVENTS (default 20)
seeded random points the headend or the gateway is killed with -9 and restarted, or the
headend is frozen (SIGSTOP) for a few seconds; dispatches are posted all along. At the end:
- every telemetry sample the gateway produced is stored exactly once: the ledger is every
  sample seen in the gateway's spool (read at each event, before each gateway kill, and
  after the final stop) plus every stored row; a lost sample is one in the ledger and not
  in the store, or a gap in a gateway run's sequence (each run's telemetry_seq starts at
  the seq0 its start line names); duplicates are counted in the store;
- every dispatch that was accepted reached a final state;
- no process died without being killed.
Prints: produced, stored, duplicated, lost, crashes, events. CHAOS_SEED picks the schedule."""

import glob
import json
import os
import random
import signal
import socket
import sqlite3
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from dersim import BUILD, ROOT, DerSim, check, wait_until  # noqa: E402
from test_e2e_headend import (GATEWAY, HEADEND, SCENARIO, Proc, gateway_config,  # noqa: E402
                              procs, write_inventory)

sys.path.insert(0, os.path.join(ROOT, BUILD, "gen", "py"))
from proto.der.v1 import agent_pb2 as pb  # noqa: E402

SEED = int(os.environ.get("CHAOS_SEED", "1"))
EVENTS = int(os.environ.get("CHAOS_EVENTS", "20"))
FINAL = ("APPLIED", "REJECTED", "EXPIRED", "FAILED")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Site:
    def __init__(self, sim, tmp):
        self.tmp = tmp
        self.inv = write_inventory(sim, tmp)
        self.db = os.path.join(tmp, "chaos.db")
        self.port = free_port()
        self.spool = os.path.join(tmp, "spool")
        self.cfg = gateway_config(sim, tmp, "fleet", "null", None,
                                  {"spool_dir": self.spool, "backoff_max": "500ms"})
        with open(self.cfg) as f:
            c = json.load(f)
        c["poll_period"] = "500ms"
        with open(self.cfg, "w") as f:
            json.dump(c, f)
        self.n = 0
        self.he = self.gw = None
        self.ledger = set()
        self.seq0 = []  # telemetry_seq0 of every gateway run
        self.crashes = 0
        self.setpoints = []

    def start_headend(self):
        self.n += 1
        self.he = Proc([HEADEND, "--grpc-listen", "127.0.0.1:%d" % self.port,
                        "--http-listen", "127.0.0.1:0", "--inventory", self.inv, "--db", self.db,
                        "--keepalive-time", "1s", "--keepalive-timeout", "1s",
                        "--min-ping-interval", "500ms"],
                       "headend-%d" % self.n, self.tmp, ready=" ready", timeout=10)
        self.http = "http://" + self.he.ready_line.split()[1].split("=", 1)[1]

    def start_gateway(self, cfg=None):
        self.n += 1
        self.gw = Proc([GATEWAY, "-c", cfg or self.cfg, "--headend", "127.0.0.1:%d" % self.port],
                       "gateway-%d" % self.n, self.tmp)
        line = wait_until(lambda: [x for x in self.gw.log().splitlines()
                                   if "telemetry_seq0=" in x], 5)
        check(line, "gateway start line: %s" % self.gw.log())
        self.seq0.append(int(line[0].split("telemetry_seq0=")[1].split()[0]))

    def alive_or_crash(self, proc):
        if proc.alive():
            return True
        self.crashes += 1
        print("CRASH: %s exited %s by itself:\n%s" % (proc.name, proc.p.returncode, proc.log()))
        return False

    def snapshot(self):
        """Every (asset, seq) in the spool now (a torn last record is skipped)."""
        for path in glob.glob(os.path.join(self.spool, "*.spool")):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue  # deleted meanwhile: released, so stored
            off = 0
            while off + 4 <= len(data):
                n = int.from_bytes(data[off:off + 4], "little")
                if n == 0 or off + 4 + n > len(data):
                    break
                try:
                    t = pb.Telemetry.FromString(data[off + 4:off + 4 + n])
                    self.ledger.add((t.asset_id, t.telemetry_seq))
                except Exception:
                    pass
                off += 4 + n

    def post_dispatch(self, rng):
        body = json.dumps({"asset_id": "bat-1", "mw": rng.choice([-0.002, 0.001, 0.0]),
                           "ttl_s": 5}).encode()
        req = urllib.request.Request(self.http + "/dispatch", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=1) as r:
                d = json.loads(r.read())
                self.setpoints.append(d.get("setpoint_id") or d.get("id"))
        except (urllib.error.URLError, OSError, ValueError):
            pass  # the headend is frozen or down: nothing was accepted

    def dispatch_state(self, sid):
        try:
            with urllib.request.urlopen(self.http + "/dispatch/" + sid, timeout=2) as r:
                return json.loads(r.read()).get("state")
        except (urllib.error.URLError, OSError, ValueError):
            return None


def stored(db):
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
    try:
        return c.execute("SELECT asset_id, seq FROM telemetry").fetchall()
    finally:
        c.close()


def main():
    tmp = tempfile.mkdtemp(prefix="derloop-chaos-")
    rng = random.Random(SEED)
    kinds = []
    try:
        with DerSim(SCENARIO) as sim:
            s = Site(sim, tmp)
            s.start_headend()
            s.start_gateway()
            check(wait_until(lambda: "event=registered" in s.gw.log(), 8),
                  "not registered: %s" % s.gw.log())
            t0 = time.monotonic()
            plan = ["kill_headend", "kill_gateway"] * (EVENTS // 2)
            plan[rng.randrange(len(plan))] = "freeze_headend"
            rng.shuffle(plan)
            for ev in plan:
                time.sleep(rng.uniform(0.5, 2.5))
                s.post_dispatch(rng)
                s.snapshot()
                if not (s.alive_or_crash(s.he) and s.alive_or_crash(s.gw)):
                    break
                kinds.append(ev)
                if ev == "kill_headend":
                    s.he.stop(signal.SIGKILL)
                    time.sleep(rng.uniform(0.1, 1.5))
                    s.start_headend()
                elif ev == "kill_gateway":
                    s.snapshot()
                    s.gw.stop(signal.SIGKILL)
                    s.snapshot()  # what the killed run left is the next run's to send
                    time.sleep(rng.uniform(0.1, 1.0))
                    s.start_gateway()
                else:
                    s.he.p.send_signal(signal.SIGSTOP)
                    time.sleep(rng.uniform(1.0, 3.0))
                    s.he.p.send_signal(signal.SIGCONT)
            chaos_s = time.monotonic() - t0
            check(s.alive_or_crash(s.he) and s.alive_or_crash(s.gw), "a process crashed")

            # Drain: stop the gateway, note what it left, let a run that publishes once
            # (telemetry_period 1h) send the rest, until its spool is empty.
            check(s.gw.stop() == 0, "gateway exit: %s" % s.gw.log()[-600:])
            s.snapshot()
            with open(s.cfg) as f:
                c = json.load(f)
            c["uplink"]["telemetry_period"] = "1h"
            drain_cfg = os.path.join(tmp, "drain.json")
            with open(drain_cfg, "w") as f:
                json.dump(c, f)
            s.start_gateway(drain_cfg)
            time.sleep(1.0)
            s.snapshot()
            drained = wait_until(lambda: not glob.glob(os.path.join(s.spool, "*.spool")), 30, 0.2)
            check(s.gw.stop() == 0, "drain gateway exit: %s" % s.gw.log()[-600:])
            stop = [x for x in s.gw.log().splitlines() if "event=stop" in x][-1]
            check(drained and " unacked=0 " in stop,
                  "spool not drained: %s %s" % (os.listdir(s.spool), stop))

            # Every accepted dispatch reaches a final state (ttl 5 s).
            final = wait_until(lambda: all(s.dispatch_state(x) in FINAL for x in s.setpoints),
                               15, 0.5)
            states = {}
            for x in s.setpoints:
                st = s.dispatch_state(x)
                states[st] = states.get(st, 0) + 1
            check(final, "dispatches not final: %s" % states)
            s.he.stop()

            rows = stored(s.db)
            keys = set(rows)
            dup = len(rows) - len(keys)
            # gaps inside each gateway run: seqs of a run lie in [seq0+1, next run's seq0]
            starts = sorted(s.seq0) + [2 ** 63]
            per = {}
            for a, q in keys:
                if q <= starts[0]:
                    continue
                run = max(i for i in range(len(starts) - 1) if starts[i] < q)
                per.setdefault((a, run), []).append(q)
            gaps = []
            for (a, run), qs in per.items():
                qs.sort()
                if qs[0] != starts[run] + 1:
                    gaps.append((a, run, "first", qs[0] - starts[run] - 1))
                missing = (qs[-1] - qs[0] + 1) - len(qs)
                if missing:
                    gaps.append((a, run, "inside", missing))
            lost = s.ledger - keys
            produced = len(keys | s.ledger)
            print("chaos (seed %d, %.0f s): events %s; produced %d, stored %d, duplicated %d, "
                  "lost %d, gaps %d, crashes %d; dispatches %d %s" %
                  (SEED, chaos_s, {k: kinds.count(k) for k in sorted(set(kinds))}, produced,
                   len(keys), dup, len(lost), len(gaps), s.crashes, len(s.setpoints), states))
            check(len(kinds) == len(plan), "only %d of %d events ran" % (len(kinds), len(plan)))
            check(dup == 0, "%d duplicated rows" % dup)
            check(not lost, "%d samples lost, e.g. %s" % (len(lost), sorted(lost)[:5]))
            check(not gaps, "gaps in gateway runs: %s" % gaps[:5])
            check(s.crashes == 0, "%d crashes" % s.crashes)
            check(produced > 500, "too few samples to mean anything: %d" % produced)
        print("PASS")
        return 0
    finally:
        for p in procs:
            try:
                p.p.send_signal(signal.SIGCONT)
            except Exception:
                pass
            p.stop(signal.SIGKILL)
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
