#!/usr/bin/python3
"""One slow device freezes the whole site's control loop. A device (here the PV inverter, behind
a proxy to der-sim) that answers every request correctly but sends its reply one byte every
300 ms (under the 500 ms byte timeout) holds a single Modbus call for up to 260 x 300 ms = 78 s.
Calls are synchronous in the control thread and never fail, so the breaker never opens, the
device is never marked offline, and no cycle runs for the battery either: no interlock (SoC
floor, stale data, expiry of a headend command) is applied while the battery keeps its last
setpoint.

Exits 1 while the bug is there: with poll_period 1s, no control cycle completes for more than
10 s. Exits 0 once one device's slowness is bounded per cycle (a total deadline per call or per
cycle, and the device then treated as offline)."""

import os
import re
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import hostile as h  # noqa: E402
from hostile import check  # noqa: E402

GAP_S = 0.3


class TrickleProxy:
    def __init__(self, upstream_port):
        self.up = upstream_port
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        self.stop = threading.Event()
        self.socks = [self.ls]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.ls.settimeout(0.2)
        while not self.stop.is_set():
            try:
                c, _ = self.ls.accept()
            except (socket.timeout, OSError):
                continue
            self.socks.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            u = socket.create_connection(("127.0.0.1", self.up), timeout=5)
            self.socks.append(u)
            buf = b""
            while not self.stop.is_set():
                chunk = c.recv(1024)
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 7 and len(buf) >= 6 + struct.unpack(">H", buf[4:6])[0]:
                    n = 6 + struct.unpack(">H", buf[4:6])[0]
                    req, buf = buf[:n], buf[n:]
                    u.sendall(req)
                    rep = b""
                    while len(rep) < 7 or len(rep) < 6 + struct.unpack(">H", rep[4:6])[0]:
                        rep += u.recv(1024)
                    for b in rep:  # a correct reply, one byte at a time
                        if self.stop.is_set():
                            return
                        c.sendall(bytes([b]))
                        time.sleep(GAP_S)
        except OSError:
            return
        finally:
            c.close()

    def close(self):
        self.stop.set()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


def main():
    tmp = h.mktemp()
    sim, cfgs = h.dersim(tmp)
    cfg = cfgs["ref"]
    port = cfg["devices"][0]["port"]
    proxy = TrickleProxy(port)
    try:
        for d in cfg["devices"]:
            if d["asset_id"] == "pv-1":
                d["port"] = proxy.port
        gw = h.gateway(tmp, cfg, args=["-v"])
        t0 = time.monotonic()
        stamps = []
        seen = 0
        while time.monotonic() - t0 < 15:
            time.sleep(0.2)
            lines = [ln for ln in gw.log().splitlines() if re.match(r"^\d+,[a-z_]+,", ln)]
            if len(lines) > seen:
                stamps += [time.monotonic()] * (len(lines) - seen)
                seen = len(lines)
        check(gw.alive(), "der-gateway died: %s" % gw.log()[-1500:])
        ts = time.monotonic()
        rc = gw.stop(timeout=5)
        print("SIGTERM: exit %s after %.1f s" % (rc, time.monotonic() - ts))
        marks = [t0] + stamps + [time.monotonic()]
        gap = max(b - a for a, b in zip(marks, marks[1:]))
        print("cycle lines=%d, longest stretch without a cycle=%.1f s" % (len(stamps), gap))
        check(gap <= 10.0, "no control cycle for %.1f s: one device trickling its replies "
              "(a byte every %.1f s) stalls every device of the site" % (gap, GAP_S))
        print("ok: a trickling device does not stall the site")
    finally:
        proxy.close()


h.run_main(main)
