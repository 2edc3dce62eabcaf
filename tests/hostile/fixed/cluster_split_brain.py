#!/usr/bin/python3
"""Hostile (wave 3, finding 24): split brain. Gateway gw-1 holds a stream on headend A, then
registers again on headend B (a failover while its old connection to A is half-open: A has not
noticed yet). The presence table names B (the newer session) on both headends, but A keeps
its own session: a dispatch posted on A for site-1 is sent on A's old stream and marked SENT,
never on B's live one, and is not re-sent there (the gateway registered on B before it
existed). In one headend a second Register of the same gateway replaces the first ("replaced
by a newer session"); across headends nothing does. Exits 1 while the stream on B does not get
the dispatch posted on A within 3 s, 0 once it does. Throwaway PostgreSQL; about 6 s."""

import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration", "lib"))
from test_headend_cluster import ARGS, INVENTORY, connect  # noqa: E402
from test_headend_peer import Gateway, Headend, check  # noqa: E402
from test_headend_pg import Cluster  # noqa: E402


def setpoints(gw, t):
    out, end = [], time.time() + t
    while time.time() < end:
        m = gw.next(0.1)
        if m is not None and m.HasField("setpoint"):
            out.append(m.setpoint.setpoint_id)
    return out


def main():
    pg = Cluster()
    tmp = tempfile.mkdtemp(prefix="hostile-split-")
    ta, tb = os.path.join(tmp, "a"), os.path.join(tmp, "b")
    os.mkdir(ta)
    os.mkdir(tb)
    a = b = old = new = None
    try:
        pg.start()
        pg.psql("CREATE DATABASE derloop", db="postgres")
        os.environ["DATABASE_URL"] = pg.url
        a = Headend(ta, ARGS + ["--node-id", "node-a"], inventory=INVENTORY)
        b = Headend(tb, ARGS + ["--node-id", "node-b"], inventory=INVENTORY)
        old = connect(a, 1)
        time.sleep(0.3)
        new = Gateway(b.grpc_port)  # the same gateway, now on B; the old stream is not closed
        rr = new.register("gw-1", "site-1", ["s1-bat"], primary="s1-bat")
        check(list(rr.accepted) == ["s1-bat"], "register on B: %r" % (rr,))
        time.sleep(0.6)  # a few heartbeats
        pres = pg.psql("SELECT node_id FROM cluster_presence WHERE site_id = 'site-1'")
        st, r = a.http("POST", "/dispatch", {"site_id": "site-1", "mw": 0.01, "ttl_s": 60})
        check(st == 202, "POST on A: %d %r" % (st, r))
        on_new, on_old = setpoints(new, 3), setpoints(old, 0.2)
        print("presence names %s; dispatch %s posted on A: newer stream (B) got %s, older "
              "stream (A) got %s" % (pres, r["setpoint_id"], on_new, on_old))
        check(r["setpoint_id"] in on_new, "the dispatch went to the older stream on A, not to "
              "the newer session on B that the presence table names")
        print("ok: a newer session on another headend wins the site's dispatches")
        return 0
    finally:
        for g in (old, new):
            if g:
                g.close()
        for h in (a, b):
            if h:
                h.stop()
        pg.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:
        print("FAIL: %s" % e)
        sys.exit(1)
