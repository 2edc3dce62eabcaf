#!/usr/bin/python3
"""From a headend store to a replay (docs/incidents.md, "From a headend store"): der-sim serve
(scenarios/fleet-site.json), der-gateway with an uplink and der-headend on a SQLite file run for
a few seconds with one dispatch; `der-headend export` writes the site's records, the
type-specific details the headend now stores (meter frequency and voltage, temperatures, EVSE
and boiler state) and site.json (assets and limits, the dispatch that reached the gateway,
sessions); `der-sim import
--site-json` turns them into a scenario that runs deterministically (twice the same digest,
tcp = inproc). Only 127.0.0.1; everything started is stopped on any exit."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from dersim import BUILD, ROOT, DerSim, check, wait_until  # noqa: E402
from test_e2e_headend import (GATEWAY, HEADEND, SCENARIO, Proc, gateway_config,  # noqa: E402
                              procs, write_inventory)
from test_telemetry_delivery import start_headend  # noqa: E402

DERSIM = os.path.join(ROOT, BUILD, "bin", "der-sim")


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + "Z"


def rows(db, asset):
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
    try:
        return c.execute("SELECT COUNT(*) FROM telemetry WHERE asset_id = ?", (asset,)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        c.close()


def run(cmd):
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "%s: exit %d: %s %s" % (" ".join(cmd), r.returncode, r.stdout[-1500:],
                                                     r.stderr[-1500:]))
    return r.stdout


def digest(out):
    return [x.split("=", 1)[1] for x in out.splitlines() if x.startswith("digest sha256=")][-1]


def main():
    tmp = tempfile.mkdtemp(prefix="derloop-import-store-")
    try:
        with DerSim(SCENARIO) as sim:
            inv = write_inventory(sim, tmp)
            db = os.path.join(tmp, "he.db")
            he = start_headend(tmp, inv, db, 0)
            kv = dict(f.split("=", 1) for f in he.ready_line.split() if "=" in f)
            t_from = int(time.time() * 1000) - 1000
            cfg = gateway_config(sim, tmp, "fleet", "net_zero", None, {"telemetry_period": "1s"})
            gw = Proc([GATEWAY, "-c", cfg, "--headend", kv["grpc"]], "gateway", tmp)
            check(wait_until(lambda: rows(db, "bat-1") >= 3, 15, 0.2),
                  "no telemetry stored: %s" % gw.log()[-1500:])
            import urllib.request
            req = urllib.request.Request("http://%s/dispatch" % kv["http"],
                                         data=json.dumps({"asset_id": "bat-1", "mw": -0.002,
                                                          "ttl_s": 60}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=3) as r:
                check(r.status in (200, 201, 202), "POST /dispatch: %d" % r.status)
            n0 = rows(db, "bat-1")
            check(wait_until(lambda: rows(db, "bat-1") >= n0 + 4, 15, 0.2), "telemetry stopped")
            gw.stop()
            he.stop()
            t_to = int(time.time() * 1000) + 1000
        exp = os.path.join(tmp, "export")
        run([os.path.join(ROOT, BUILD, "bin", "der-headend"), "export", "--db", db, "--inventory",
             inv, "--site", "fleet", "--from", iso(t_from), "--to", iso(t_to), "--out", exp])
        with open(os.path.join(exp, "site.json")) as f:
            site = json.load(f)
        with open(os.path.join(exp, "records.csv")) as f:
            header = f.readline().strip().split(",")
            n = sum(1 for _ in f)
        check(n >= 5, "records.csv has %d rows" % n)
        for col in ("unix_ms", "grid_w", "pv_w", "bat-1_w", "bat-1_soc", "evse_w", "boiler_w"):
            check(col in header, "records.csv lacks %s: %s" % (col, header))
        reached = [d for d in site["dispatches"] if d["reached"]]
        check(len(reached) == 1 and reached[0]["asset_id"] == "bat-1" and
              reached[0]["power_w"] == -2000, "dispatches: %s" % site["dispatches"])
        check(site["sessions"], "no session exported")
        with open(os.path.join(exp, "details.jsonl")) as f:
            det = [json.loads(x) for x in f]
        kinds = {d["asset_id"]: d["details"] for d in det}
        check("frequency_hz" in kinds.get("grid", {}) and "voltage_v" in kinds["grid"],
              "meter details not stored/exported: %s" % kinds.get("grid"))
        check("temperature_c" in kinds.get("bat-1", {}), "battery details: %s" % kinds.get("bat-1"))
        check("state" in kinds.get("evse-1", {}) and "state" in kinds.get("boiler-1", {}),
              "EVSE/boiler state: %s %s" % (kinds.get("evse-1"), kinds.get("boiler-1")))
        print("ok: export: %d rows of %d columns, %d dispatch(es), %d session(s)" %
              (n, len(header), len(site["dispatches"]), len(site["sessions"])))

        imp = os.path.join(tmp, "import")
        out = run([DERSIM, "import", "--site-json", os.path.join(exp, "site.json"), "--out", imp,
                   os.path.join(exp, "records.csv")])
        print(out.strip())
        with open(os.path.join(imp, "scenario.json")) as f:
            scn = json.load(f)
        ev = [e for e in scn.get("events", []) if e["type"] == "dispatch"]
        check(len(ev) == 1 and ev[0]["asset"] == "bat-1" and ev[0]["power_w"] == -2000 and
              ev[0]["ttl"] in ("1m", "59s"), "dispatch events: %s" % scn.get("events"))
        bat = [a for a in scn["sites"][0]["assets"] if a["id"] == "bat-1"][0]
        check(bat["capacity_kwh"] == 20, "bat-1 capacity from the export: %s" % bat)
        d = []
        for transport in ("inproc", "inproc", "tcp"):
            d.append(digest(run([DERSIM, "run", os.path.join(imp, "scenario.json"), "--transport",
                                 transport, "--quiet", "--no-plots", "--no-report", "--out",
                                 os.path.join(tmp, "run-%d" % len(d))])))
        check(d[0] == d[1] == d[2], "digests differ: %s" % d)
        print("ok: the imported replay runs deterministically: %s (inproc twice, tcp)" % d[0][:16])
        print("PASS")
        return 0
    finally:
        for p in procs:
            p.stop(signal.SIGKILL)
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
