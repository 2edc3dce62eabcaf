#!/usr/bin/env python3
"""Every strategy runs in the real der-gateway: for each strategy scenario, `der-sim serve`
serves its site on loopback in real time and der-gateway runs the site configuration serve
wrote (the scenario's strategy, params and stacked constraints) for a few cycles with -v. The
gateway must exit 0, decide with the configured strategy every cycle (the decision's strategy
column), read its devices (no no_grid / no_price branch where the scenario has a meter and
prices) and write no failing setpoint. Four scenarios run at a time (they mostly wait)."""
import json
import os
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from dersim import DerSim, Fail, ROOT, BUILD, check  # noqa: E402

GATEWAY = os.path.join(ROOT, BUILD, "bin", "der-gateway")
SCENARIOS = ["peak-shaving", "time-of-use", "self-consumption", "arbitrage", "backup-power",
             "grid-services", "ev-charging", "boiler-pv", "stacked", "self-consumption-fcr",
             "netzero-load-step"]
CYCLES = 3


def run_one(name, results):
    try:
        with open(os.path.join(ROOT, "scenarios", name + ".json")) as f:
            scenario = json.load(f)
        strategy = scenario["gateway"]["strategy"]
        with DerSim(os.path.join("scenarios", name + ".json")) as sim, \
                tempfile.TemporaryDirectory() as tmp:
            site_id = next(iter(sim.sites))
            cfg = sim.config(site_id)
            check(cfg.get("strategy") == strategy,
                  "%s: serve's configuration names strategy %r, the scenario %r"
                  % (name, cfg.get("strategy"), strategy))
            path = os.path.join(tmp, "site.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            gw = subprocess.run([GATEWAY, "--config", path, "--duration",
                                 "%dms" % (CYCLES * 1000 - 500), "-v"],
                                capture_output=True, text=True, timeout=20)
            check(gw.returncode == 0, "%s: der-gateway exit %d: %s"
                  % (name, gw.returncode, gw.stderr[-1500:]))
            rows = [line.split(",") for line in gw.stdout.splitlines() if line.strip()]
            check(len(rows) >= CYCLES - 1, "%s: %d decision lines, want >= %d"
                  % (name, len(rows), CYCLES - 1))
            modes = sorted({r[1] for r in rows})
            for r in rows:
                check(r[1] == strategy or r[1].startswith(strategy + "/"),
                      "%s: a cycle decided with %r, not %s" % (name, r[1], strategy))
                check(not r[1].endswith(("/no_grid", "/no_price")),
                      "%s: the strategy could not read its inputs: %s" % (name, r[1]))
            check("event=write_failed" not in gw.stderr,
                  "%s: a setpoint write failed: %s" % (name, gw.stderr[-1500:]))
            results[name] = "%s: %d cycles, %s" % (name, len(rows), " ".join(modes))
    except Exception as e:  # noqa: BLE001 - reported below
        results[name] = e


def main():
    results = {}
    for k in range(0, len(SCENARIOS), 4):
        threads = [threading.Thread(target=run_one, args=(n, results))
                   for n in SCENARIOS[k:k + 4]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    failed = 0
    for name in SCENARIOS:
        r = results.get(name, Fail("%s: did not run" % name))
        if isinstance(r, Exception):
            failed += 1
            print("FAIL", r)
        else:
            print("ok  ", r)
    if failed:
        sys.exit(1)
    print("every strategy runs in der-gateway: ok")


if __name__ == "__main__":
    main()
