#!/usr/bin/env python3
"""der-gateway against der-sim serve in real time, on loopback: the gateway connects to every
device, charges two batteries at a fixed site power (split equally), and when one battery
stops answering it keeps controlling the rest (the other battery takes the whole request);
a PV inverter answering exception 4 and an EVSE that goes offline and reboots are logged and
recovered; SIGTERM stops the gateway cleanly."""
import re
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from dersim import DerSim, Fail, Raw, ROOT, BUILD, check, read_point, walk  # noqa: E402

GATEWAY = os.path.join(ROOT, BUILD, "bin", "der-gateway")


def wset(raw, unit):
    read = lambda a, n: raw.read(unit, a, n)  # noqa: E731
    models = {mid: addr for mid, addr, _ in walk(read)}
    ena = read_point(read, models[704], 704, "WSetEna")
    return read_point(read, models[704], 704, "WSet") if ena == 1 else 0.0


def main():
    with DerSim("tests/data/gateway/faults-rt.json", "--speed", "1") as sim, \
            tempfile.TemporaryDirectory() as tmp:
        t_ready = time.monotonic()
        site = sim.site("rt")
        units = {a: u["unit"] for a, u in site["units"].items()}
        cfg = sim.config("rt")
        cfg["poll_period"] = "500ms"
        for d in cfg["devices"]:
            d["timeout"] = "200ms"
        path = os.path.join(tmp, "rt.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        errlog = open(os.path.join(tmp, "gateway.log"), "w+")
        gw = subprocess.Popen([GATEWAY, "--config", path], stdout=subprocess.DEVNULL,
                              stderr=errlog)
        try:
            raw = Raw(site["port"])

            def at(t):  # wait until t seconds of simulated (= wall) time since ready
                time.sleep(max(0.0, t_ready + t - time.monotonic()))

            at(3.5)
            b1, b2 = wset(raw, units["bat-1"]), wset(raw, units["bat-2"])
            print("t=3.5 s: bat-1 %.0f W, bat-2 %.0f W" % (b1, b2))
            check(abs(b1 + 2000) < 1 and abs(b2 + 2000) < 1,
                  "before the fault the 4 kW charge is split 2 kW + 2 kW, got %.0f, %.0f" % (b1, b2))
            at(10.5)
            b1 = wset(raw, units["bat-1"])
            print("t=10.5 s (bat-2 timing out): bat-1 %.0f W" % b1)
            check(abs(b1 + 4000) < 1, "bat-1 takes the whole 4 kW while bat-2 is silent, got %.0f" % b1)
            # The fault ends at 13 s; bat-2's breaker may have just reopened for a longer spell
            # (it backs off), so allow up to 25 s for the probe that brings it back.
            at(13.0)
            end = time.monotonic() + 25
            while time.monotonic() < end and abs(wset(raw, units["bat-1"]) + 2000) > 1:
                time.sleep(0.25)
            b1, b2 = wset(raw, units["bat-1"]), wset(raw, units["bat-2"])
            print("t=%.1f s (recovered): bat-1 %.0f W, bat-2 %.0f W"
                  % (time.monotonic() - t_ready, b1, b2))
            check(abs(b1 + 2000) < 1 and abs(b2 + 2000) < 1,
                  "after recovery the split is 2 kW + 2 kW again, got %.0f, %.0f" % (b1, b2))
            raw.close()
            t0 = time.monotonic()
            gw.send_signal(signal.SIGTERM)
            rc = gw.wait(timeout=3)
            print("SIGTERM: exit %d after %.2f s" % (rc, time.monotonic() - t0))
            check(rc == 0, "der-gateway exits 0 on SIGTERM, got %d" % rc)
        except Fail:
            errlog.seek(0)
            print(errlog.read()[-4000:])
            raise
        finally:
            if gw.poll() is None:
                gw.kill()
                gw.wait()
        errlog.seek(0)
        log = errlog.read()
        print(log[-2500:])
        for needle in ["level=info event=start site=rt", "bus=tcp endpoint=rt",
                       "level=info event=connect ", "timeout: no reply", "modbus exception 4",
                       "level=info event=stop site=rt", "reason=signal"]:
            check(needle in log, "gateway log mentions %r" % needle)
        # the format of every binary: TIMESTAMP level=LEVEL event=NAME ..., who at the end
        lines = log.splitlines()
        for ev, asset, level in [("offline", "bat-2", "warn"), ("offline", "pv-1", "warn"),
                                 ("offline", "evse-1", "warn"), ("online", "evse-1", "info"),
                                 ("online", "bat-2", "info"), ("online", "pv-1", "info")]:
            check(any(re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z level=%s event=%s\b.* site=rt asset=%s$"
                               % (level, ev, asset), ln) for ln in lines),
                  "gateway log has a level=%s event=%s line of %s" % (level, ev, asset))
    print("der-gateway against der-sim serve: ok")


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print("FAIL:", e)
        sys.exit(1)
