#!/usr/bin/python3
"""Per-asset commands and the operating state, real processes on loopback (docs/operations.md,
"Commands"; docs/physics.md, "Operating states"): `der-sim serve` (scenarios/fleet-site.json:
batteries, PV, an EV charger, a boiler, meters), der-headend and der-gateway (strategy null).
- every command on every asset type through POST /assets/:id/commands, each followed to its
  final ack in GET /commands/:id: APPLIED where the driver maps it onto the device's registers,
  REJECTED with the driver's reason where the device cannot do it (set_temperature or reset on
  a battery, charge on PV, discharge on the charger, anything on a meter);
- the state in /agents and the asset's latest telemetry: a stopped battery shows IDLE and
  answers 0 W while its setpoint (a discharge command) stands, then RUNNING and the setpoint
  once started; the PV inverter, the charger and the boiler stop and start the same way;
- bad requests: unknown command 400, unknown asset 404, a value missing 400;
- a gateway that did not announce commands (--legacy) gets none: 409;
- roles: a viewer may not send a command (403), an operator may (409 here: no gateway), the
  viewer reads /commands/:id; the audit trail has every command request."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dersim import DerSim, check, wait_until  # noqa: E402
import test_e2e_headend as e2e  # noqa: E402
import test_rest_auth as auth  # noqa: E402

FINAL = ("APPLIED", "REJECTED", "EXPIRED", "FAILED")


def command(he, asset, name, value=None, ttl_s=60):
    body = {"command": name, "ttl_s": ttl_s}
    if value is not None:
        body["value"] = value
    code, r = he.post("/assets/%s/commands" % asset, body)
    check(code == 202 and r.get("command_id"), "POST %s %s: %s %s" % (asset, body, code, r))
    return r["command_id"]


def outcome(he, cid, timeout=6.0):
    rec = wait_until(lambda: (he.get("/commands/" + cid)[1] or {}).get("state") in FINAL and
                     he.get("/commands/" + cid)[1], timeout)
    check(rec, "command %s: no final ack: %s" % (cid, he.get("/commands/" + cid)[1]))
    return rec


def expect_all(he, cases):
    """Sends every (asset, command, final state, value, detail) at once, then checks each."""
    ids = [command(he, c[0], c[1], c[3] if len(c) > 3 else None) for c in cases]
    for c, cid in zip(cases, ids):
        asset, name, state = c[:3]
        detail = c[4] if len(c) > 4 else ""
        rec = outcome(he, cid)
        check(rec["state"] == state and detail in rec["detail"],
              "%s %s: want %s (%s), got %s" % (asset, name, state, detail, rec))
        states = [a["state"] for a in rec["acks"]]
        check(states[0] == "RECEIVED" and states[-1] == state,
              "%s %s acks: %s" % (asset, name, states))


def expect(he, asset, name, state, value=None, detail=""):
    expect_all(he, [(asset, name, state, value, detail)])


def state_of(he, asset):
    rows = [r for r in he.get("/agents")[1] if r["asset_id"] == asset]
    return rows[0].get("state") if rows else None


def wait_state(he, asset, want, timeout=6.0):
    check(wait_until(lambda: state_of(he, asset) == want, timeout),
          "%s: state %s, want %s" % (asset, state_of(he, asset), want))


def test_commands(sim, tmp):
    he = e2e.Headend(tmp, inventory=e2e.write_inventory(sim, tmp), kind="real")
    cfgp = e2e.gateway_config(sim, tmp, "fleet", "null")
    gw = e2e.Proc([e2e.GATEWAY, "-c", cfgp, "--headend", he.grpc], "gateway", tmp)
    check(wait_until(lambda: he.connected("gw-fleet"), 8), "gateway did not register: %s"
          % gw.log())
    for a in ("bat-1", "pv-1", "evse-1", "boiler-1"):
        check(wait_until(lambda: state_of(he, a) in ("RUNNING", "IDLE"), 6),
              "%s: no state in /agents: %s" % (a, state_of(he, a)))
    check(state_of(he, "grid") is None, "a meter has no state: %s" % state_of(he, "grid"))
    check(state_of(he, "bat-1") == "RUNNING", "bat-1 starts RUNNING: %s" % state_of(he, "bat-1"))

    # battery: stopped, it answers 0 W whatever its setpoint; started, it follows the setpoint
    expect(he, "bat-1", "stop", "APPLIED", detail="802.SetOp=DISCONNECT")
    wait_state(he, "bat-1", "IDLE")
    check((he.telemetry("bat-1") or {}).get("state") == "IDLE", "latest telemetry state")
    expect(he, "bat-1", "discharge", "APPLIED", 3000)
    check(wait_until(lambda: (he.telemetry("bat-1") or {}).get("setpoint_w") == 3000, 5),
          "discharge setpoint: %s" % he.telemetry("bat-1"))
    time.sleep(1.5)
    t = he.telemetry("bat-1")
    check(t["power_w"] == 0 and t["setpoint_w"] == 3000,
          "a stopped battery answers 0 W whatever its setpoint: %s" % t)
    expect(he, "bat-1", "start", "APPLIED", detail="802.SetOp=CONNECT")
    wait_state(he, "bat-1", "RUNNING")
    check(wait_until(lambda: abs((he.telemetry("bat-1") or {}).get("power_w", 0) - 3000) < 50,
                     5), "started, the battery follows its setpoint: %s" % he.telemetry("bat-1"))
    expect(he, "bat-1", "charge", "APPLIED", 2000)
    check(wait_until(lambda: (he.telemetry("bat-1") or {}).get("setpoint_w") == -2000, 5),
          "charge: %s" % he.telemetry("bat-1"))
    expect_all(he, [("bat-1", "set_output", "APPLIED", -500),
                    ("bat-1", "set_temperature", "REJECTED", 50,
                     "battery has no temperature setpoint"),
                    ("bat-1", "reset", "REJECTED", None, "battery has no fault reset")])
    print("ok: battery: stop (IDLE, 0 W under a 3 kW setpoint), start (RUNNING, 3 kW), "
          "charge, set_output; set_temperature and reset refused with the reason")

    # PV inverter: 123 Conn
    expect(he, "pv-1", "stop", "APPLIED", detail="123.Conn=DISCONNECT")
    wait_state(he, "pv-1", "IDLE")
    check(wait_until(lambda: (he.telemetry("pv-1") or {}).get("power_w") == 0, 5),
          "a stopped PV inverter produces nothing: %s" % he.telemetry("pv-1"))
    expect(he, "pv-1", "start", "APPLIED", detail="123.Conn=CONNECT")
    wait_state(he, "pv-1", "RUNNING")
    expect_all(he, [("pv-1", "set_output", "APPLIED", 1000),
                    ("pv-1", "charge", "REJECTED", 1000, "PV inverter cannot charge"),
                    ("pv-1", "reset", "REJECTED", None, "no fault reset")])
    print("ok: PV: stop (IDLE, 0 W), start, set_output; charge and reset refused")

    # EV charger and boiler: the maps' Command register
    expect(he, "evse-1", "stop", "APPLIED", detail="Command=2")
    wait_state(he, "evse-1", "IDLE")
    expect(he, "evse-1", "start", "APPLIED", detail="Command=1")
    wait_state(he, "evse-1", "RUNNING")
    expect_all(he, [("evse-1", "reset", "APPLIED", None, "Command=3"),
                    ("evse-1", "set_output", "APPLIED", 4000),
                    ("evse-1", "discharge", "REJECTED", 1000, "cannot discharge"),
                    ("boiler-1", "set_temperature", "APPLIED", 55, "TempSetpoint=55"),
                    ("grid", "start", "REJECTED", None, "meter has no commands")])
    # beyond TempMax - 5: the device answers exception 3
    expect(he, "boiler-1", "set_temperature", "FAILED", 99, "exception")
    expect(he, "boiler-1", "stop", "APPLIED", detail="Command=2")
    wait_state(he, "boiler-1", "IDLE", 12)  # stop_delay 5 s
    expect_all(he, [("boiler-1", "start", "APPLIED", None, "Command=1"),
                    ("boiler-1", "charge", "REJECTED", 1000, "use set_output")])
    expect(he, "boiler-1", "reset", "APPLIED", detail="Command=3")
    print("ok: EV charger and boiler: stop (IDLE), start, reset, set_output/set_temperature; "
          "refusals with the reason; a meter takes no command")

    code, r = he.post("/assets/bat-1/commands", {"command": "explode"})
    check(code == 400 and r["field"] == "command", "unknown command: %s %s" % (code, r))
    code, r = he.post("/assets/bat-1/commands", {"command": "charge"})
    check(code == 400 and r["field"] == "value", "charge without value: %s %s" % (code, r))
    code, r = he.post("/assets/nope/commands", {"command": "start"})
    check(code == 404, "unknown asset: %s %s" % (code, r))
    code, r = he.get("/commands/cmd-0-0")
    check(code == 404, "unknown command id: %s %s" % (code, r))

    # a gateway that does not announce commands
    gw.stop()
    check(wait_until(lambda: not he.connected("gw-fleet"), 6), "gateway still connected")
    cfgl = e2e.gateway_config(sim, tmp, "legacy", "null")
    gl = e2e.Proc([e2e.GATEWAY, "-c", cfgl, "--headend", he.grpc, "--legacy"], "legacy", tmp)
    check(wait_until(lambda: he.connected("gw-legacy"), 8), "legacy: %s" % gl.log())
    code, r = he.post("/assets/bat-1/commands", {"command": "stop"})
    check(code == 409 and "does not take commands" in r["error"], "legacy: %s %s" % (code, r))
    gl.stop()
    code, r = he.post("/assets/bat-1/commands", {"command": "stop"})
    check(code == 409 and "no gateway" in r["error"], "no gateway: %s %s" % (code, r))
    print("ok: a gateway without the capability: 409; no gateway: 409; bad requests 400/404")


def test_roles(tmp):
    db = os.path.join(tmp, "roles.db")
    with open(os.path.join(tmp, "inventory.json"), "w") as f:
        json.dump(auth.INVENTORY, f)
    viewer = auth.add_token(db, "look", "viewer")
    op = auth.add_token(db, "ops", "operator")
    admin = auth.add_token(db, "root", "admin")
    he = auth.Headend(tmp, db, name="roles")
    try:
        code, r, _ = auth.req(he.port, "POST", "/assets/a-bat/commands", viewer,
                              {"command": "stop"})
        check(code == 403 and r["field"] == "role", "viewer command: %s %s" % (code, r))
        code, r, _ = auth.req(he.port, "POST", "/assets/a-bat/commands", op, {"command": "stop"})
        check(code == 409, "operator command without a gateway: %s %s" % (code, r))
        code, r, _ = auth.req(he.port, "GET", "/commands/cmd-1-1", viewer)
        check(code == 404 and r["field"] == "command_id", "viewer GET: %s %s" % (code, r))
        code, r, _ = auth.req(he.port, "GET", "/audit", admin)
        rows = [a for a in r["entries"] if "/commands" in a.get("path", "")]
        check(code == 200 and len(rows) == 2 and {a["status"] for a in rows} == {403, 409},
              "audit rows of the commands: %s %s" % (code, rows))
    finally:
        he.stop()
    print("ok: roles: viewer 403, operator 409 (no gateway), both in the audit trail")


def main():
    def body(tmp):
        with DerSim(e2e.SCENARIO) as sim:
            test_commands(sim, tmp)
        test_roles(tmp)
    return e2e.run_main("command", "derloop-cmd-", body, fails=(auth.Fail,))


if __name__ == "__main__":
    sys.exit(main())
