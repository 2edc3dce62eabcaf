#!/usr/bin/env python3
"""Decisions with real processes (issue 13; docs/protocol.md, "Decisions"): der-sim serve
(scenarios/reference-site.json), der-gateway running `charge`, der-headend; an operator's
dispatch to the battery above safety.max_charge_w (clamped: power_config).

- the gateway's Decision records appear in GET /sites/ref/decisions with the strategy, the
  request, the setpoints written and the clamp with its reason; again at decision_period while
  nothing changes; an emergency stop shows as estop_active with its conflict;
- a peer whose Register does not announce decisions sends one: the headend refuses it
  (event=decision_refused), keeps the stream and stores nothing;
- `der-headend export` writes them to decisions.jsonl;
- a headend that predates decisions (the python stand-in, which ignores the body): the gateway
  stays connected and its telemetry arrives."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dersim import DerSim, check, wait_until  # noqa: E402
import test_e2e_headend as e2e  # noqa: E402
import test_headend_peer as peer  # noqa: E402
from test_headend_peer import pb  # noqa: E402

SCENARIO = "scenarios/reference-site.json"


def write_inventory(sim, tmp):
    cfg = sim.config("ref")
    assets = [{"asset_id": d["asset_id"], "type": d["type"]} for d in cfg["devices"]]
    inv = {"sites": [{"site_id": "ref", "gateways": ["gw-ref"], "assets": assets},
                     {"site_id": "cabin", "gateways": ["gw-cabin"],
                      "assets": [{"asset_id": "cabin-bat", "type": "battery"}]}]}
    path = os.path.join(tmp, "inventory.json")
    with open(path, "w") as f:
        json.dump(inv, f)
    return path


def gateway(sim, tmp, target, name):
    cfg = sim.config("ref")
    cfg.update(strategy="charge", params={"power_w": 1e6}, gateway_id="gw-ref")
    cfg.setdefault("safety", {})["max_charge_w"] = 2000
    cfg["uplink"] = {"keepalive_time": "1s", "keepalive_timeout": "1s",
                     "backoff_initial": "200ms", "backoff_max": "500ms",
                     "decision_period": "4s"}
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return e2e.Proc([e2e.GATEWAY, "-c", path, "--headend", target], name, tmp)


def decisions(he, site="ref", query="from=0"):
    code, r = he.get("/sites/%s/decisions?%s" % (site, query))
    check(code == 200, "GET decisions: %s %s" % (code, r))
    return r["decisions"]


def test_stored(sim, tmp, db):
    # the headend on a SQLite file (for the export), else as test_e2e_headend starts it
    e2e.HEADEND_ARGS = [db if a == ":memory:" else a for a in e2e.HEADEND_ARGS]
    he = e2e.Headend(tmp, inventory=write_inventory(sim, tmp), kind="real")
    gw = gateway(sim, tmp, he.grpc, "gateway")
    check(wait_until(lambda: he.connected("gw-ref"), 8), "no Register: %s" % gw.log())
    check(wait_until(lambda: len(decisions(he)) >= 1, 6),
          "no decisions stored: %s" % (decisions(he), ))
    # an operator's 4 kW charge of bat-1 (a manual asset request: the site split does not
    # touch it) above safety.max_charge_w: safety clamps it (power_config)
    code, r = he.post("/dispatch", {"asset_id": "bat-1", "mw": -0.004, "ttl_s": 600})
    check(code in (200, 201, 202), "dispatch: %s %s" % (code, r))
    check(wait_until(lambda: decisions(he)[-1]["clamps"], 4), "no clamp: %s" % decisions(he))
    d = decisions(he)[-1]
    check(d["strategy"] == "charge" and d["gateway_id"] == "gw-ref", "decision: %s" % d)
    check(any(r["power_w"] is not None and r["power_w"] <= -1e5 for r in d["requests"]),
          "the charge request: %s" % d["requests"])
    bat = [s for s in d["setpoints"] if s["asset"] == "bat-1"]
    check(bat and bat[0]["final_w"] == -2000 and bat[0]["source"] == "manual",
          "bat-1 setpoint: %s" % d["setpoints"])
    check(any(c["asset"] == "bat-1" and c["reason"] == "power_config" and c["from_w"] == -4000
              and c["to_w"] == -2000
              for c in d["clamps"]),
          "bat-1 clamped with a reason: %s" % json.dumps(decisions(he)))
    check(not d["estop_active"], "estop_active: %s" % d)
    # nothing changes: no decision every cycle (1 s), the next one at decision_period (4 s)
    n0, t0 = len(decisions(he)), time.monotonic()
    time.sleep(2.5)
    n = len(decisions(he)) - n0
    check(n <= 1, "%d decisions in %.1f s while nothing changed" % (n, time.monotonic() - t0))
    check(wait_until(lambda: len(decisions(he)) >= n0 + n + 1, 5), "none at the period")
    code, r = he.get("/sites/ref/decisions?from=0&limit=1")
    check(code == 200 and r["count"] == 1, "limit=1: %s %s" % (code, r))
    code, r = he.get("/sites/nowhere/decisions")
    check(code == 404 and r["field"] == "site_id", "unknown site: %s %s" % (code, r))
    code, r = he.get("/sites/ref/decisions?from=x")
    check(code == 400 and r["field"] == "from", "bad from: %s %s" % (code, r))
    # an emergency stop changes the decision: sent at once, with its conflict
    code, r = he.post("/sites/ref/estop", {"reason": "drill"})
    check(code == 202, "estop: %s %s" % (code, r))
    check(wait_until(lambda: decisions(he)[-1]["estop_active"], 4),
          "no estop decision: %s" % decisions(he)[-1])
    d = decisions(he)[-1]
    check(any(c["reason"] == "estop" for c in d["conflicts"]), "estop conflict: %s" % d)
    print("ok: decisions stored: strategy %s, %d requests, %d setpoints, clamps %s; "
          "%d in 2.5 s while steady, then one at the period; estop shows" %
          (d["strategy"], len(d["requests"]), len(d["setpoints"]),
           sorted({c["reason"] for c in decisions(he)[-2]["clamps"]}), n))
    gw.stop()
    return he


def test_not_announced(he):
    port = int(he.grpc.rsplit(":", 1)[1])
    g = peer.Gateway(port)
    try:
        rr = g.register("gw-cabin", "cabin", ["cabin-bat"])
        check(list(rr.accepted) == ["cabin-bat"], "register: %s" % rr)
        g.send(decision=pb.Decision(ts_ms=int(time.time() * 1000), strategy="sneaky"))
        g.telemetry("cabin-bat", 100.0, 1)
        check(wait_until(lambda: he.telemetry("cabin-bat") is not None, 3),
              "the stream did not go on after the refused decision: %s" % (g.status, ))
        check(g.status is None, "the stream ended: %s" % (g.status, ))
        check(decisions(he, "cabin") == [], "stored: %s" % decisions(he, "cabin"))
        check("event=decision_refused" in he.proc.log(), "no decision_refused in the log")
    finally:
        g.close()
    print("ok: a Decision not announced in Register is refused, the stream kept")


def test_export(he, tmp, db):
    exp = os.path.join(tmp, "export")
    r = subprocess.run([e2e.HEADEND, "export", "--db", db, "--inventory", he.inventory,
                        "--site", "ref", "--from", "2000-01-01T00:00:00Z",
                        "--to", "2100-01-01T00:00:00Z", "--out", exp],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "export: %d %s" % (r.returncode, r.stderr))
    with open(os.path.join(exp, "decisions.jsonl")) as f:
        lines = [json.loads(x) for x in f]
    check(lines and all(x["gateway_id"] == "gw-ref" for x in lines), "decisions.jsonl: %s" % lines)
    check(any(x["decision"]["clamps"] for x in lines) and lines[-1]["decision"]["estop_active"],
          "decisions.jsonl lacks the clamp or the stop: %s" % lines[-1])
    print("ok: export: %d decisions in decisions.jsonl" % len(lines))


def test_old_headend(sim, tmp):
    he = e2e.Headend(tmp, kind="fake")
    gw = gateway(sim, tmp, he.grpc, "gateway-old")
    check(wait_until(lambda: he.connected("gw-ref"), 8), "no Register: %s" % gw.log())
    check(wait_until(lambda: he.telemetry("bat-1") is not None, 5), "no telemetry")
    time.sleep(1.5)  # its first decisions
    check(gw.alive() and he.connected("gw-ref"), "the gateway lost its stream: %s" % gw.log())
    print("ok: a headend that predates decisions: the gateway stays connected, telemetry flows")
    gw.stop()
    he.proc.stop()


def main():
    def body(tmp):
        with DerSim(SCENARIO) as sim:
            db = os.path.join(tmp, "headend.db")
            he = test_stored(sim, tmp, db)
            test_not_announced(he)
            he.proc.stop()
            test_export(he, tmp, db)
            test_old_headend(sim, tmp)
    return e2e.run_main("decision", "derloop-decisions-", body, fails=(peer.Fail,))


if __name__ == "__main__":
    sys.exit(main())
