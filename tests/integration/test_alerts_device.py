#!/usr/bin/python3
"""The device alerts end to end on loopback (docs/operations.md, "Alerts"): `der-sim serve`
with a small scenario of its own (a grid meter, a battery, a PV inverter) whose events trip
the battery (`device` fault: its operating state goes FAULT while its status stays "ok") and
make the PV inverter answer every Modbus request with exception 4 (a wire fault) for a while;
a real der-gateway and der-headend with a short Modbus window.
- asset_fault is raised for bat-1 from the telemetry state (Telemetry.state FAULT) and cleared
  when the device leaves FAULT;
- modbus_errors is raised for pv-1 from the gateway's Modbus counters (Telemetry 21-24, the
  rate over --alert-modbus-window above --alert-modbus-error-pct), and cleared once the errors
  have left the window; no other asset gets either alert;
- GET /agents shows the counters per asset."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dersim import DerSim, check, wait_until  # noqa: E402
import test_e2e_headend as e2e  # noqa: E402

FAULT_AT, FAULT_FOR = 6, 8  # s of the scenario (served at speed 1)

SCENARIO = {
    "name": "alerts-device",
    "description": "A battery trips and a PV inverter answers exceptions, both for a while.",
    "seed": 3,
    "start": "2026-06-21T10:00:00Z",
    "duration": "2m",
    "step": "1s",
    "profiles": {"sun": {"type": "clear_sky", "latitude": 48.1, "longitude": 11.6}},
    "sites": [{"id": "dev", "assets": [
        {"id": "grid", "type": "meter", "role": "grid"},
        {"id": "bat-1", "type": "battery", "capacity_kwh": 10, "max_charge_kw": 5,
         "max_discharge_kw": 5},
        {"id": "pv-1", "type": "pv", "peak_kw": 8, "irradiance": "sun"}]}],
    "gateway": {"strategy": "null", "poll_period": "250ms"},
    "events": [
        {"at": "%ds" % FAULT_AT, "duration": "%ds" % FAULT_FOR, "type": "fault",
         "asset": "bat-1", "fault": "device"},
        {"at": "%ds" % FAULT_AT, "duration": "%ds" % FAULT_FOR, "type": "fault",
         "asset": "pv-1", "fault": "exception", "code": 4},
    ],
}


def alerts(he, query):
    code, r = he.get("/alerts" + query)
    check(code == 200, "GET /alerts%s: %s %s" % (query, code, r))
    return r["alerts"]


def run(sim, tmp):
    cfg = sim.config("dev")
    inv = {"sites": [{"site_id": "dev", "gateways": ["gw-dev"], "assets": [
        dict({"asset_id": d["asset_id"], "type": d["type"]},
             **({"capacity_wh": d["capacity_wh"], "min_power_w": -d["max_charge_w"],
                 "max_power_w": d["max_discharge_w"]} if d["type"] == "battery" else {}))
        for d in cfg["devices"]]}]}
    invp = os.path.join(tmp, "inventory.json")
    with open(invp, "w") as f:
        json.dump(inv, f)
    e2e.HEADEND_ARGS += ["--alert-eval", "200ms", "--alert-modbus-window", "3s",
                         "--alert-modbus-min-requests", "4", "--alert-modbus-error-pct", "50",
                         "--alert-soc-reserve-pct", "0", "--alert-lag-max", "0"]
    he = e2e.Headend(tmp, inventory=invp, kind="real")
    cfg["gateway_id"] = "gw-dev"
    cfg["uplink"] = {"keepalive_time": "1s", "keepalive_timeout": "1s",
                     "backoff_initial": "200ms", "backoff_max": "1s"}
    cfgp = os.path.join(tmp, "dev.json")
    with open(cfgp, "w") as f:
        json.dump(cfg, f)
    gw = e2e.Proc([e2e.GATEWAY, "-c", cfgp, "--headend", he.grpc], "gateway", tmp)
    check(wait_until(lambda: he.connected("gw-dev"), 8), "gateway did not register")
    check(time.monotonic() - sim.started < FAULT_AT - 1, "too slow to start before the faults")
    check(not alerts(he, "?state=active"), "alerts before the faults: %s" %
          alerts(he, "?state=active"))

    # the counters reach /agents
    rows = wait_until(lambda: [r for r in he.get("/agents")[1]
                               if r["asset_id"] == "pv-1" and (r.get("modbus") or {})
                               .get("requests", 0) > 0], 3)
    check(rows, "no Modbus counters for pv-1 in /agents: %s" % he.get("/agents")[1])
    print("ok: /agents shows pv-1's Modbus counters %s" % rows[0]["modbus"])

    fault = wait_until(lambda: alerts(he, "?state=active&rule=asset_fault"), FAULT_AT + 4)
    check(fault and [a["subject"] for a in fault] == ["bat-1"], "asset_fault: %s" %
          alerts(he, "?state=all"))
    check("operating state FAULT" in fault[0]["detail"], "detail: %s" % fault[0])
    t_fault = time.monotonic() - sim.started
    mb = wait_until(lambda: alerts(he, "?state=active&rule=modbus_errors"), 5)
    check(mb and [a["subject"] for a in mb] == ["pv-1"], "modbus_errors: %s" %
          alerts(he, "?state=all"))
    check(mb[0]["value"] >= 50, "rate %s" % mb[0])
    t_mb = time.monotonic() - sim.started
    print("ok: raised asset_fault bat-1 at %.1f s (%s) and modbus_errors pv-1 at %.1f s (%s); "
          "faults from %d s" % (t_fault, fault[0]["detail"], t_mb, mb[0]["detail"], FAULT_AT))

    end = FAULT_AT + FAULT_FOR
    check(wait_until(lambda: not alerts(he, "?state=active&rule=asset_fault"),
                     end + 6 - (time.monotonic() - sim.started)),
          "asset_fault not cleared: %s" % alerts(he, "?state=all"))
    t_fc = time.monotonic() - sim.started
    check(wait_until(lambda: not alerts(he, "?state=active&rule=modbus_errors"),
                     end + 8 - (time.monotonic() - sim.started)),
          "modbus_errors not cleared: %s" % alerts(he, "?state=all"))
    t_mc = time.monotonic() - sim.started
    hist = alerts(he, "?state=cleared")
    check(sorted((a["rule"], a["subject"]) for a in hist) ==
          [("asset_fault", "bat-1"), ("modbus_errors", "pv-1")], "history: %s" % hist)
    print("ok: cleared asset_fault at %.1f s, modbus_errors at %.1f s (faults ended at %d s, "
          "window 3 s)" % (t_fc, t_mc, end))
    gw.stop()
    he.proc.stop()


def main():
    def body(tmp):
        scen = os.path.join(tmp, "alerts-device.json")
        with open(scen, "w") as f:
            json.dump(SCENARIO, f)
        with DerSim(scen) as sim:
            run(sim, tmp)
    return e2e.run_main("device alert", "derloop-alerts-dev-", body)


if __name__ == "__main__":
    sys.exit(main())
