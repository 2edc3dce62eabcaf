#!/usr/bin/python3
"""Hostile (wave 3, finding 23): two headends on one PostgreSQL whose wall clocks differ. B's
clock runs 120 s ahead (an LD_PRELOAD shim, built here with cc, adds 120 s to
clock_gettime(CLOCK_REALTIME) in B only). A dispatch posted on A with ttl_s 60 for a site whose
gateway stream is on B: A writes expires_ms from its own clock, B compares it with its own
(hub_cluster_deliver: `d.expires_ms <= now_ms`), finds it expired and never sends it. Exits 1
while the gateway on B gets nothing within 5 s, 0 once it gets the setpoint. Loopback only;
throwaway PostgreSQL (test_headend_pg.py's Cluster). About 6 s."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration", "lib"))
from test_headend_cluster import ARGS, INVENTORY, connect, setpoint  # noqa: E402
from test_headend_peer import BUILD, Headend, check  # noqa: E402
from test_headend_pg import Cluster  # noqa: E402

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>
int clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*real)(clockid_t, struct timespec *);
    if (!real)
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real(id, ts);
    if (rc == 0 && id == CLOCK_REALTIME)
        ts->tv_sec += 120;
    return rc;
}
"""


def main():
    pg = Cluster()
    tmp = tempfile.mkdtemp(prefix="hostile-skew-")
    ta, tb = os.path.join(tmp, "a"), os.path.join(tmp, "b")
    os.mkdir(ta)
    os.mkdir(tb)
    a = b = gw = None
    try:
        src, so = os.path.join(tmp, "shim.c"), os.path.join(tmp, "shim.so")
        with open(src, "w") as f:
            f.write(SHIM)
        subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", so, src, "-ldl"], check=True)
        pg.start()
        pg.psql("CREATE DATABASE derloop", db="postgres")
        os.environ["DATABASE_URL"] = pg.url
        a = Headend(ta, ARGS + ["--node-id", "node-a"], inventory=INVENTORY)
        # a sanitizer build (make SAN=1) wants its runtime first in the preload list
        ldd = subprocess.run(["ldd", os.path.join(BUILD, "bin", "der-headend")],
                             capture_output=True, text=True).stdout
        asan = [x.split("=>")[1].split()[0] for x in ldd.splitlines()
                if "libasan" in x and "=>" in x]
        os.environ["LD_PRELOAD"] = " ".join(asan + [so])
        try:
            b = Headend(tb, ARGS + ["--node-id", "node-b"], inventory=INVENTORY)
        finally:
            del os.environ["LD_PRELOAD"]
        gw = connect(b, 2)
        time.sleep(0.6)  # a few heartbeats: A knows B holds site-2
        st, r = a.http("POST", "/dispatch", {"site_id": "site-2", "mw": 0.01, "ttl_s": 60})
        check(st == 202, "POST on A: %d %r" % (st, r))
        sp = setpoint(gw, 5)
        st2, d = a.http("GET", "/dispatch/" + r["setpoint_id"])
        print("B's clock +120 s: dispatch %s (ttl 60 s) posted on A for B's site: gateway got %s, "
              "state %s" % (r["setpoint_id"], sp.setpoint_id if sp else None, d.get("state")))
        check(sp is not None and sp.setpoint_id == r["setpoint_id"],
              "a dispatch posted on A never reached the gateway on B: B's clock decides expiry "
              "of A's expires_ms")
        print("ok: clock skew between headends does not drop dispatches")
        return 0
    finally:
        if gw:
            gw.close()
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
