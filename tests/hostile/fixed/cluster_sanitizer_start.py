#!/usr/bin/python3
"""Hostile wave 3, finding 25: der-headend in cluster mode (DATABASE_URL set) built with the
sanitizers (`make SAN=1 BUILD=build-san`) died at its first cluster turn: hub_cluster_take did
memcpy(ids, NULL, 0) while nothing had been announced yet (UBSan: null pointer passed as
argument 2), so no cluster path could be run under ASan/UBSan at all. Runs the sanitizer
build's der-headend for 3 s on a throwaway PostgreSQL and wants a clean SIGTERM exit and no
sanitizer line. Needs $SAN_BUILD/bin/der-headend (default build-san): without it, says so and
exits 0 (the ordinary build cannot see this undefined behaviour)."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from test_headend_pg import Cluster  # noqa: E402

BIN = os.path.join(ROOT, os.environ.get("SAN_BUILD", "build-san"), "bin", "der-headend")


def main():
    if not os.path.exists(BIN):
        print("skipped: no sanitizer build at %s (make SAN=1 BUILD=build-san)" % BIN)
        return 0
    pg, tmp = Cluster(), tempfile.mkdtemp(prefix="hostile-san-")
    try:
        pg.start()
        pg.psql("CREATE DATABASE derloop", db="postgres")
        inv = os.path.join(tmp, "inventory.json")
        with open(inv, "w") as f:
            f.write('{"sites":[]}')
        env = dict(os.environ, DATABASE_URL=pg.url)
        with open(os.path.join(tmp, "log"), "w+") as log:
            p = subprocess.Popen([BIN, "--grpc-listen", "127.0.0.1:0", "--http-listen",
                                  "127.0.0.1:0", "--inventory", inv, "--node-id", "san-1",
                                  "--cluster-heartbeat", "200ms", "--cluster-expiry", "1s"],
                                 env=env, stdout=subprocess.DEVNULL, stderr=log)
            time.sleep(3)
            alive = p.poll() is None
            if alive:
                p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
            log.seek(0)
            text = log.read()
        bad = [l for l in text.splitlines() if "runtime error" in l or "Sanitizer" in l]
        if not alive or rc != 0 or bad:
            print("FAIL: alive after 3 s %s, exit %s: %s" % (alive, rc, bad[:3] or text[-800:]))
            return 1
        print("ok: the sanitizer build runs a cluster headend and stops cleanly")
        return 0
    finally:
        pg.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
