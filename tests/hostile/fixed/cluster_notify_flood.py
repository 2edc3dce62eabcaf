#!/usr/bin/python3
"""Hostile (wave 3, finding 20): another client of the cluster's PostgreSQL floods the channel
derloop_dispatch with NOTIFY payloads that name no dispatch. Each one costs der-headend one
dispatch lookup in its store, made under the hub lock (headend/cluster.c run() ->
hub_cluster_deliver -> dispatch_get), so REST and the gateways' streams wait for the whole
burst. Exits 1 while a burst of 100,000 bogus notifications holds GET /sites for more than 2 s,
0 once it does not. Throwaway PostgreSQL (test_headend_pg.py's Cluster), loopback only."""

import os
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration", "lib"))
from test_headend_cluster import ARGS, INVENTORY, connect  # noqa: E402
from test_headend_peer import Headend, check  # noqa: E402
from test_headend_pg import Cluster  # noqa: E402

N = int(os.environ.get("FLOOD", "100000"))


def main():
    pg = Cluster()
    tmp = tempfile.mkdtemp(prefix="hostile-notify-")
    he = gw = None
    try:
        pg.start()
        pg.psql("CREATE DATABASE derloop", db="postgres")
        os.environ["DATABASE_URL"] = pg.url
        he = Headend(tmp, ARGS + ["--node-id", "node-a"], inventory=INVENTORY)
        gw = connect(he, 1)
        st, _ = he.http("GET", "/sites")
        check(st == 200, "GET /sites %d" % st)
        worst = [0.0]
        stop = threading.Event()

        def probe():
            while not stop.is_set():
                t0 = time.time()
                try:
                    he.http("GET", "/sites")
                except OSError:  # urllib's 5 s timeout
                    pass
                worst[0] = max(worst[0], time.time() - t0)
                time.sleep(0.02)
        th = threading.Thread(target=probe)
        th.start()
        t0 = time.time()
        pg.psql("SELECT count(pg_notify('derloop_dispatch', 'bogus-' || g)) FROM "
                "generate_series(1, %d) g" % N)
        time.sleep(0.5)
        # the burst is over when a real dispatch gets through again
        for _ in range(20):
            try:
                he.http("POST", "/dispatch", {"site_id": "site-1", "mw": 0.01, "ttl_s": 60})
                break
            except OSError:
                pass
        got = None
        end = time.time() + 60
        while time.time() < end and got is None:
            m = gw.next(0.5)
            if m is not None and m.HasField("setpoint"):
                got = m.setpoint
        took = time.time() - t0
        stop.set()
        th.join()
        alive = he.p.poll() is None
        print("flood=%d notifications: worst GET /sites %.2f s, a dispatch after the flood "
              "delivered after %.1f s, headend alive %s" % (N, worst[0], took, alive))
        check(alive, "der-headend died under the flood")
        check(worst[0] < 2.0, "GET /sites held %.1f s by %d bogus notifications (hub lock held "
              "across one store lookup per notification)" % (worst[0], N))
        print("ok: bogus notifications do not hold the hub")
        return 0
    finally:
        if gw:
            gw.close()
        if he:
            he.stop()
        pg.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # Fail from check()
        print("FAIL: %s" % e)
        sys.exit(1)
