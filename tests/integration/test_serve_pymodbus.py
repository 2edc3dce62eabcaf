#!/usr/bin/python3
"""der-sim serve against pymodbus, a Modbus client we did not write (Debian's python3-pymodbus):
walks the SunSpec chain of the battery, the PV and both meters (model ids and lengths, checked
against SunSpec's own model definitions), reads SoC and W with their scale factors, writes a
battery setpoint in model 704 and sees 701 W follow, reads and writes the EVSE and boiler maps
(docs/registers.md), and checks exception 2 on a read-only point and 3 on a refused value."""

import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from dersim import (SUNSPEC_DIR, DerSim, Fail, check, decode, model_points,  # noqa: E402
                    s16, wait_until)

from pymodbus.client import ModbusTcpClient  # noqa: E402
from pymodbus.pdu import ExceptionResponse  # noqa: E402

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

SPEED = "10"
EXPECTED_MODELS = {
    "battery": [1, 701, 702, 704, 713, 802],
    "pv": [1, 701, 702, 704, 123],
    "meter": [1, 203],
}


def model_length(mid):
    """L of a model from SunSpec's definition: every point after ID and L, groups included."""
    with open(os.path.join(SUNSPEC_DIR, "model_%d.json" % mid)) as f:
        g = json.load(f)["group"]
    n = sum(p["size"] for p in g["points"]) - 2
    for sub in g.get("groups", []):
        n += sum(p["size"] for p in sub["points"]) * (sub.get("count", 1)
                                                      if isinstance(sub.get("count", 1), int)
                                                      else 1)
    return n


class Dev:
    """One unit through pymodbus."""

    def __init__(self, client, unit):
        self.c, self.unit = client, unit

    def read(self, addr, n):
        out = []
        while n > 0:  # at most 125 registers per request
            k = min(n, 125)
            rr = self.c.read_holding_registers(addr, k, slave=self.unit)
            if isinstance(rr, ExceptionResponse):
                raise Fail("read %d+%d of unit %d: exception %d"
                           % (addr, k, self.unit, rr.exception_code))
            check(not rr.isError(), "read %d+%d of unit %d: %r" % (addr, k, self.unit, rr))
            out += rr.registers
            addr, n = addr + k, n - k
        return out

    def write(self, addr, values):
        """Returns 0, or the exception code."""
        if len(values) == 1:
            rr = self.c.write_register(addr, values[0] & 0xFFFF, slave=self.unit)
        else:
            rr = self.c.write_registers(addr, [v & 0xFFFF for v in values], slave=self.unit)
        if isinstance(rr, ExceptionResponse):
            return rr.exception_code
        check(not rr.isError(), "write %d of unit %d: %r" % (addr, self.unit, rr))
        return 0

    def walk(self):
        check(self.read(40000, 2) == [0x5375, 0x6E53], "unit %d: no 'SunS'" % self.unit)
        models, addr = {}, 40002
        order = []
        while True:
            mid, length = self.read(addr, 2)
            if mid == 0xFFFF:
                break
            models[mid] = (addr, length)
            order.append(mid)
            addr += 2 + length
            check(len(order) < 32, "unit %d: SunSpec chain does not end" % self.unit)
        return order, models

    def point(self, models, mid, name):
        addr = models[mid][0]
        off, size, typ, sf = model_points(mid)[name]
        raw = decode(self.read(addr + off, size), typ)
        if sf:
            sfo = model_points(mid)[sf][0]
            return raw * 10.0 ** s16(self.read(addr + sfo, 1)[0])
        return raw


def test_sunspec(site, client):
    devs = {}
    for asset, u in site["units"].items():
        if u["type"] not in EXPECTED_MODELS:
            continue
        d = Dev(client, u["unit"])
        order, models = d.walk()
        check(order == EXPECTED_MODELS[u["type"]],
              "%s: models %s, want %s" % (asset, order, EXPECTED_MODELS[u["type"]]))
        for mid in order:
            check(models[mid][1] == model_length(mid), "%s: model %d has L=%d, SunSpec says %d"
                  % (asset, mid, models[mid][1], model_length(mid)))
        devs[asset] = (d, models)
        print("ok: %s (unit %d) SunSpec chain %s" % (asset, u["unit"], order))
    return devs


def test_battery(bat, models):
    soc = bat.point(models, 713, "SoC")
    check(0 <= soc <= 100, "SoC %s outside 0..100" % soc)
    w = bat.point(models, 701, "W")
    print("ok: battery SoC %.1f %%, W %.0f" % (soc, w))

    # 704: WSetEna, WSetMod, WSet (int32, high word first) in one FC16, then 701 W follows.
    base = models[704][0]
    p = model_points(704)
    ena = base + p["WSetEna"][0]
    check(p["WSetMod"][0] == p["WSetEna"][0] + 1 and p["WSet"][0] == p["WSetEna"][0] + 2,
          "704 layout: WSetEna, WSetMod, WSet not contiguous")
    sf = s16(bat.read(base + p["WSet_SF"][0], 1)[0])
    for target in (2000.0, -3000.0):
        raw = int(round(target / 10.0 ** sf)) & 0xFFFFFFFF
        code = bat.write(ena, [1, 1, raw >> 16, raw & 0xFFFF])
        check(code == 0, "writing the setpoint %.0f W: exception %d" % (target, code))
        got = wait_until(lambda: abs(bat.point(models, 701, "W") - target) <= 0.02 * abs(target)
                         and bat.point(models, 701, "W"), timeout=5.0, interval=0.1)
        check(got, "701 W did not follow the setpoint %.0f W within 5 s (speed %s): W=%s"
              % (target, SPEED, bat.point(models, 701, "W")))
        print("ok: battery setpoint %.0f W -> 701 W %.0f" % (target, got))
    # Back to no setpoint.
    check(bat.write(ena, [0]) == 0, "disabling WSetEna refused")

    # A read-only point: exception 2. An out-of-range value: exception 3 (|WSet| > WMax).
    w_addr = models[701][0] + model_points(701)["W"][0]
    check(bat.write(w_addr, [100]) == 2, "write to 701 W (read-only) did not give exception 2")
    big = int(round(1e6 / 10.0 ** sf)) & 0xFFFFFFFF
    check(bat.write(base + p["WSet"][0], [big >> 16, big & 0xFFFF]) == 3,
          "WSet of 1 MW did not give exception 3")
    check(bat.write(40000, [0]) == 2, "write to the SunS marker did not give exception 2")
    print("ok: battery read-only write -> 2, out-of-range WSet -> 3")


def test_meters(devs):
    for asset, (d, models) in devs.items():
        if 203 not in models:
            continue
        w = d.point(models, 203, "W")
        hz = d.point(models, 203, "Hz")
        check(45 <= hz <= 65, "%s: frequency %s Hz" % (asset, hz))
        print("ok: meter %s W %.0f, %.2f Hz" % (asset, w, hz))


# Our own maps (docs/registers.md), at holding register 0.
EV = {"MapId": 0, "MapVersion": 1, "State": 2, "Phases": 3, "MinCurrent": 4, "MaxCurrent": 5,
      "CurrentLimit": 6, "Enable": 7, "ActiveCurrentLimit": 8, "Power": 9}
BO = {"MapId": 0, "MapVersion": 1, "State": 2, "TankTemp": 3, "TempSetpoint": 4, "Power": 5,
      "PowerLimit": 6, "SgReadyMode": 7, "Command": 8, "TempMax": 10, "RatedPower": 11}


def test_evse(client, unit):
    d = Dev(client, unit)
    r = d.read(0, 21)
    check(r[EV["MapId"]] == 0x4556, "EVSE map id 0x%04x" % r[EV["MapId"]])
    check(chr(r[EV["State"]]) in "ABCEF", "EVSE state %r" % r[EV["State"]])
    check(r[EV["Phases"]] == 3, "EVSE phases %d" % r[EV["Phases"]])
    check(r[EV["MinCurrent"]] == 60 and r[EV["MaxCurrent"]] == 160,
          "EVSE min/max %d/%d (0.1 A)" % (r[EV["MinCurrent"]], r[EV["MaxCurrent"]]))
    check(d.write(EV["CurrentLimit"], [100]) == 0, "EVSE limit 10 A refused")
    check(d.read(EV["CurrentLimit"], 1)[0] == 100, "EVSE limit did not read back")
    check(wait_until(lambda: d.read(EV["ActiveCurrentLimit"], 1)[0] == 100, 3.0),
          "EVSE ActiveCurrentLimit did not become 10 A")
    check(d.write(EV["CurrentLimit"], [30]) == 3, "EVSE limit 3 A (< min 6 A) not exception 3")
    check(d.write(EV["CurrentLimit"], [0]) == 0, "EVSE limit 0 (pause) refused")
    check(d.write(EV["Enable"], [2]) == 3, "EVSE Enable=2 not exception 3")
    check(d.write(EV["State"], [65]) == 2, "EVSE write to State not exception 2")
    check(d.write(EV["MapId"], [1, 2]) == 2, "EVSE write to MapId not exception 2")
    check(d.read(EV["CurrentLimit"], 1)[0] == 0, "EVSE limit changed by a refused write")
    print("ok: EVSE map read, limit written, refusals 2 and 3")


def test_boiler(client, unit):
    d = Dev(client, unit)
    r = d.read(0, 15)
    check(r[BO["MapId"]] == 0x424F, "boiler map id 0x%04x" % r[BO["MapId"]])
    check(r[BO["State"]] <= 4, "boiler state %d" % r[BO["State"]])
    check(r[BO["RatedPower"]] == 3000, "boiler rated %d W" % r[BO["RatedPower"]])
    temp = s16(r[BO["TankTemp"]]) / 10.0
    check(0 < temp < 100, "boiler tank %.1f C" % temp)
    check(d.write(BO["PowerLimit"], [1500]) == 0, "boiler limit 1500 W refused")
    check(d.read(BO["PowerLimit"], 1)[0] == 1500, "boiler limit did not read back")
    check(d.write(BO["PowerLimit"], [4000]) == 3, "boiler limit above rating not exception 3")
    check(d.write(BO["TempSetpoint"], [100]) == 3, "boiler setpoint 10 C not exception 3")
    check(d.write(BO["SgReadyMode"], [5]) == 3, "SG-Ready mode 5 not exception 3")
    check(d.write(BO["SgReadyMode"], [3]) == 0, "SG-Ready mode 3 refused")
    check(d.write(BO["Power"], [1]) == 2, "boiler write to Power not exception 2")
    check(d.write(BO["TempMax"], [1]) == 2, "boiler write to TempMax not exception 2")
    print("ok: boiler map read, limit and SG-Ready written, refusals 2 and 3")


def main():
    with DerSim("scenarios/reference-site.json", "--speed", SPEED) as sim:
        site = sim.site("ref")
        cfg = sim.config("ref")
        check(cfg["site_id"] == "ref", "config site_id %r" % cfg.get("site_id"))
        by_id = {dv["asset_id"]: dv for dv in cfg["devices"]}
        for asset, u in site["units"].items():
            dv = by_id.get(asset)
            check(dv is not None, "config has no device %s" % asset)
            check(dv["port"] == site["port"] and dv["unit_id"] == u["unit"]
                  and dv["type"] == u["type"], "config device %s disagrees: %s" % (asset, dv))
        check(by_id["bat-1"]["capacity_wh"] == 10000, "battery capacity in config")
        check(by_id["evse-1"]["driver"] == "derloop-evse", "EVSE driver in config")
        check(cfg.get("strategy") == "net_zero", "gateway section not copied into the config")
        check("warning=" not in sim.stderr(tail=None),
              "the gateway's parser refused the written configuration: %s" % sim.stderr())
        print("ok: configuration file matches the endpoint line and the gateway's parser")

        client = ModbusTcpClient("127.0.0.1", port=site["port"], timeout=3, retries=0)
        check(client.connect(), "pymodbus could not connect")
        try:
            devs = test_sunspec(site, client)
            test_battery(*devs["bat-1"])
            test_meters(devs)
            test_evse(client, site["units"]["evse-1"]["unit"])
            test_boiler(client, site["units"]["boiler-1"]["unit"])
        finally:
            client.close()
        check(sim.proc.poll() is None, "der-sim died: %s" % sim.stderr())
        rc, dt = sim.stop()
        check(rc == 0, "exit status %s after SIGTERM" % rc)
    print("PASS test_serve_pymodbus")


if __name__ == "__main__":
    t0 = time.monotonic()
    try:
        main()
    except Fail as e:
        print("FAIL:", e)
        sys.exit(1)
    print("took %.1f s" % (time.monotonic() - t0))
