#!/usr/bin/python3
"""bench_cluster: two der-headend processes on one throwaway PostgreSQL (the harness of
tests/integration/test_headend_pg.py), SITES python3-grpcio gateways split evenly across them,
each acking every setpoint at once (RECEIVED, APPLIED). Group dispatches over the whole fleet are
posted alternately on A and on B; printed per round: the time from POST to each share reaching
its gateway, for shares whose stream is on the posting headend (local) and on the other one
(crossed: NOTIFY and the holder's send), and the time until every share is APPLIED in the
database. Figures only, no target (docs/operations.md, "Several headends")."""

import os
import queue
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from test_headend_peer import Gateway, Headend, check, pb  # noqa: E402
from test_headend_pg import Cluster  # noqa: E402

SITES = int(os.environ.get("BENCH_CLUSTER_SITES", "100"))
ROUNDS = int(os.environ.get("BENCH_CLUSTER_ROUNDS", "4"))
INVENTORY = {"sites": [
    {"site_id": "s%04d" % i, "group": "vpp", "gateways": ["g%04d" % i], "assets": [
        {"asset_id": "s%04d-bat" % i, "type": "battery", "capacity_wh": 1e5,
         "min_power_w": -1e4, "max_power_w": 1e4}]} for i in range(SITES)]}


class Acker(threading.Thread):
    """Takes every Setpoint from the gateway's inbox, notes when it came, acks it."""

    def __init__(self, gw, seen):
        super().__init__(daemon=True)
        self.gw, self.seen = gw, seen

    def run(self):
        while not self.gw.done.is_set():
            try:
                m = self.gw.inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            if m.HasField("setpoint"):
                self.seen[m.setpoint.setpoint_id] = time.monotonic()
                self.gw.ack(m.setpoint.setpoint_id, pb.SetpointAck.RECEIVED)
                self.gw.ack(m.setpoint.setpoint_id, pb.SetpointAck.APPLIED)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))] if v else float("nan")


def main():
    pg = Cluster()
    tmp = [os.path.join(pg.dir, "a"), os.path.join(pg.dir, "b")]
    heads, gws = [], []
    seen = {}
    try:
        pg.start()
        pg.psql("CREATE DATABASE derloop", db="postgres")
        os.environ["DATABASE_URL"] = pg.url
        for t, name in zip(tmp, ("a", "b")):
            os.mkdir(t)
            heads.append(Headend(t, ["--node-id", "node-" + name], inventory=INVENTORY))
        holder = {}
        for i in range(SITES):
            he = heads[i % 2]
            gw = Gateway(he.grpc_port)
            rr = gw.register("g%04d" % i, "s%04d" % i, ["s%04d-bat" % i])
            check(len(rr.accepted) == 1, "register s%04d" % i)
            gw.telemetry("s%04d-bat" % i, 0.0, 1)
            Acker(gw, seen).start()
            gws.append(gw)
            holder["s%04d" % i] = i % 2
        end = time.time() + 15
        while time.time() < end:
            n = [he.http("GET", "/sites")[1]["totals"]["connected"] for he in heads]
            if n == [SITES, SITES]:
                break
            time.sleep(0.1)
        check(n == [SITES, SITES], "connected as seen by A and B: %r" % n)
        print("bench_cluster: %d sites, %d gateway streams on each of 2 headends, PostgreSQL %s"
              % (SITES, SITES // 2, pg.version))
        for r in range(ROUNDS):
            src = r % 2
            t0 = time.monotonic()
            st, g = heads[src].http("POST", "/dispatch",
                                    {"group_id": "vpp", "mw": 0.001 * (r + 1), "ttl_s": 120})
            t_post = time.monotonic() - t0
            check(st == 202 and len(g["setpoints"]) == SITES, "group dispatch: %d %r" % (st, g))
            ids = {x["setpoint_id"]: x["site_id"] for x in g["setpoints"]}
            end = time.monotonic() + 30
            while time.monotonic() < end and not all(i in seen for i in ids):
                time.sleep(0.01)
            check(all(i in seen for i in ids), "shares not delivered: %d of %d"
                  % (sum(i in seen for i in ids), len(ids)))
            local = [(seen[i] - t0) * 1000 for i, s in ids.items() if holder[s] == src]
            crossed = [(seen[i] - t0) * 1000 for i, s in ids.items() if holder[s] != src]
            sql = ("SELECT count(*) FROM dispatch WHERE state = 102 AND id IN (%s)"
                   % ",".join("'%s'" % i for i in ids))
            while time.monotonic() < end and pg.psql(sql) != [str(SITES)]:
                time.sleep(0.02)
            t_all = (time.monotonic() - t0) * 1000
            check(pg.psql(sql) == [str(SITES)], "not all APPLIED")
            print("round %d posted on %s: POST %.0f ms; to the gateway: local p50 %.0f p99 %.0f "
                  "max %.0f ms, crossed p50 %.0f p99 %.0f max %.0f ms; all %d APPLIED in the "
                  "database %.0f ms after the POST"
                  % (r + 1, "AB"[src], t_post * 1000, pct(local, 50), pct(local, 99),
                     max(local), pct(crossed, 50), pct(crossed, 99), max(crossed), SITES, t_all))
    finally:
        for gw in gws:
            gw.close()
        for he in heads:
            he.stop()
        pg.cleanup()


if __name__ == "__main__":
    main()
