#!/usr/bin/python3
"""A full disk under the spool (here a 64 KiB tmpfs with spool_max_bytes 65536, the smallest
bound: the filesystem fills before the spool's own bound deletes anything) is never reported:
spool writes fail with ENOSPC, the gateway silently falls back to its memory queue and then
drops the NEWEST samples, logging only `telemetry_dropped ... reason="memory queue full"`,
while the spool keeps the oldest ones (docs/protocol.md: when the spool is full "the oldest
segment ... is deleted"). An operator sees neither the disk problem nor which data is lost.

Needs root (mount -t tmpfs); mounts in a mktemp dir and unmounts it. Exits 1 while no log line
names the spool's write failure (ENOSPC / "No space left"). Exits 0 once it is reported (and,
better, the spool then deletes its oldest segment to make room, as at its own bound)."""

import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import hostile as h  # noqa: E402
from hostile import check  # noqa: E402


def main():
    mnt = tempfile.mkdtemp(prefix="hostile-spool-full-")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt]).returncode:
        os.rmdir(mnt)
        raise h.Fail("cannot mount a tmpfs (needs root)")
    try:
        tmp = h.mktemp()
        sim, cfgs = h.dersim(tmp)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
        s.close()  # nothing listens there: the headend is unreachable, everything spools
        cfg = cfgs["ref"]
        cfg["poll_period"] = "20ms"
        cfg["uplink"] = {"target": "127.0.0.1:%d" % dead, "spool_dir": mnt,
                         "spool_max_bytes": 65536, "queue_len": 64}
        gw = h.gateway(tmp, cfg)
        time.sleep(10)
        check(gw.alive(), "der-gateway died")
        gw.stop()
        log = gw.log()
        used = sum(os.path.getsize(os.path.join(mnt, f)) for f in os.listdir(mnt))
        stop = [ln for ln in log.splitlines() if "uplink event=stop" in ln]
        print("spool bytes on the full disk: %d; %s" % (used, stop[-1][-110:] if stop else "-"))
        for ln in log.splitlines():
            if "dropped" in ln or "spool" in ln.lower() and "event=start" not in ln:
                print("log: %s" % ln[25:200])
        reported = any(k in log for k in ("ENOSPC", "No space left", "no space left"))
        check(reported, "the spool's disk is full and no log line says so; new samples are "
              "dropped as 'memory queue full' while the spool keeps the oldest")
        print("ok: a full spool disk is reported")
    finally:
        h.cleanup()
        subprocess.run(["umount", mnt])
        os.rmdir(mnt)


h.run_main(main)
