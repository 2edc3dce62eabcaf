#!/usr/bin/python3
"""Records the field incidents of scenarios/incidents/ from a real system (docs/incidents.md,
"Recording an incident"): `der-sim serve` plays the FIELD site (records/field-*.json, with its
true parameters, which the replay is not told), the real `der-gateway` controls it in real time
and reports to a real `der-headend` on a SQLite file; afterwards the records are taken out the
way an engineer gets them, and `der-sim import` turns them into the replay, one command each:

  oscillation  (11 min)  the site's logger CSV (local time, Europe/Berlin, 10 s): grid, battery,
                         SoC and the house meter, written from `der-headend export`'s records
                         and the house meter's stored telemetry
                         -> records/shop-oscillation.csv -> records/shop-oscillation/
  ttl          (10 min)  the uplink cut for 3 min through a relay while two dispatches are sent
                         -> `der-headend export` -> records/ttl-export/ -> records/ttl/
  spool        (6 min)   the uplink cut for 3 min on a gateway that keeps 8 telemetry messages
                         (queue_len 8): the oldest are dropped
                         -> `der-headend export` -> records/spool-export/
                         -> records/kiosk-headend-outage-spool/

Usage: make-records.py oscillation|ttl|spool|all   (from any directory; needs a built tree);
RECORDS_DIR=DIR writes into DIR instead of over the checked-in records.
Real time: run the three at once (`all` does) and it takes about 11 minutes. Not part of make
test: tests/integration/test_incident_records.sh re-imports what this wrote (fast).
Only 127.0.0.1; everything started is stopped on any exit."""

import csv
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zoneinfo

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "lib"))
from dersim import BUILD, DerSim, check  # noqa: E402
from test_e2e_headend import GATEWAY, HEADEND, Proc, procs  # noqa: E402

DERSIM = os.path.join(ROOT, BUILD, "bin", "der-sim")
REL = "scenarios/incidents/records"
# where the records and imports go: here (the checked-in ones), or $RECORDS_DIR to try the
# procedure without touching them
OUT = os.path.abspath(os.environ.get("RECORDS_DIR") or HERE)
TZ = "Europe/Berlin"


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + "Z"


def run(cmd):
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "%s: exit %d: %s %s" % (" ".join(cmd), r.returncode, r.stdout[-1500:],
                                                     r.stderr[-1500:]))
    print(r.stdout.strip())
    return r.stdout


class Relay:
    """A loopback TCP relay (the uplink's path to the headend) that can be cut and restored on
    the same port, as a flaky mobile link would: cut closes every connection and stops
    listening (the gateway sees connection refused), restore listens again."""

    def __init__(self, target_port):
        self.target = target_port
        self.port = 0
        self.conns = []
        self.lock = threading.Lock()
        self.lsock = None
        self.restore()

    def restore(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        self.port = s.getsockname()[1]
        s.listen(8)
        s.settimeout(0.5)
        self.lsock = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, s):
        while self.lsock is s:
            try:
                c, _ = s.accept()
            except (socket.timeout, OSError):
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=3)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        a.settimeout(None)
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        s, self.lsock = self.lsock, None
        s.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                except OSError:
                    pass
            self.conns = []


def post(http, body):
    req = urllib.request.Request("http://%s/dispatch" % http, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3) as r:
        check(r.status in (200, 201, 202), "POST /dispatch: %d" % r.status)
        print("dispatch %s: %s" % (body, r.read().decode()[:200]))


def field_system(tmp, scenario, site, target=None, uplink=None):
    """serve + headend (SQLite) + gateway; returns (sim, headend, gateway, db, http, t_from)."""
    sim = DerSim(scenario)
    inv = os.path.join(tmp, "inventory.json")
    run([DERSIM, "inventory", "-o", inv, os.path.join(ROOT, scenario)])
    db = os.path.join(tmp, "headend.db")
    he = Proc([HEADEND, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
               "--inventory", inv, "--db", db, "--keepalive-time", "1s", "--keepalive-timeout",
               "1s", "--min-ping-interval", "500ms"], "headend-" + site, tmp, ready=" ready",
              timeout=8)
    kv = dict(f.split("=", 1) for f in he.ready_line.split() if "=" in f)
    grpc_port = int(kv["grpc"].rsplit(":", 1)[1])
    cfg = sim.config(site)
    cfg["gateway_id"] = "gw-" + site
    port = target(grpc_port) if target else grpc_port
    cfg["uplink"] = {"target": "127.0.0.1:%d" % port, "telemetry_period": "10s",
                     "keepalive_time": "1s", "keepalive_timeout": "1s",
                     "backoff_initial": "200ms", "backoff_max": "2s", **(uplink or {})}
    path = os.path.join(tmp, site + ".json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    t_from = int(time.time() * 1000)
    gw = Proc([GATEWAY, "-c", path], "gateway-" + site, tmp)
    return sim, he, gw, db, kv["http"], inv, t_from


def export(tmp, db, inv, site, t_from, t_to, out):
    if os.path.isdir(out):
        shutil.rmtree(out)
    run([os.path.join(ROOT, BUILD, "bin", "der-headend"), "export", "--db", db, "--inventory",
         inv, "--site", site, "--from", iso(t_from), "--to", iso(t_to), "--out", out])


def oscillation(tmp):
    sim, he, gw, db, http, inv, t_from = field_system(tmp, REL + "/field-oscillation.json", "shop")
    time.sleep(10 * 60 + 20)
    gw.stop()
    he.stop()
    sim.kill()
    t_to = int(time.time() * 1000)
    exp = os.path.join(tmp, "export")
    export(tmp, db, inv, "shop", t_from, t_to, exp)
    # The site's logger: what the headend holds, in local time without an offset (as loggers
    # write it), the battery under the importer's single-battery names, the house meter as
    # load_w (read from the store: the export keeps only the grid meter).
    import sqlite3
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    house = {ts // 1000 * 1000: w for ts, w in  # the export's rows are whole seconds
             c.execute("SELECT ts_ms, power_w FROM telemetry WHERE asset_id = 'house-meter' "
                       "AND ts_ms BETWEEN ? AND ?", (t_from, t_to)).fetchall()}
    c.close()
    zone = zoneinfo.ZoneInfo(TZ)
    out = os.path.join(OUT, "shop-oscillation.csv")
    with open(os.path.join(exp, "records.csv")) as f, open(out, "w", newline="") as g:
        w = csv.writer(g, lineterminator="\n")
        w.writerow(["time", "grid_w", "battery_w", "soc", "load_w"])
        for r in csv.DictReader(f):
            ms = int(r["unix_ms"])
            local = datetime.datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d %H:%M:%S")
            h = house.get(ms)
            w.writerow([local, r["grid_w"], r["bat-1_w"], r["bat-1_soc"],
                        "" if h is None else "%.1f" % h])
    print("wrote %s" % out)
    # the battery's nameplate: ten minutes of a hunting loop move its SoC too little to
    # estimate the capacity from the records
    run([DERSIM, "import", "--tz", TZ, "--capacity-kwh", "10", "--name", "shop-oscillation",
         "--out", OUT + "/shop-oscillation", OUT + "/shop-oscillation.csv"])


def ttl(tmp):
    relay = []

    def via_relay(port):
        relay.append(Relay(port))
        return relay[0].port

    sim, he, gw, db, http, inv, t_from = field_system(tmp, REL + "/field-ttl.json", "depot",
                                                      via_relay)
    t0 = time.monotonic()

    def at(s):
        time.sleep(max(0.0, t0 + s - time.monotonic()))

    at(60)
    post(http, {"asset_id": "bat-1", "mw": 0.003, "ttl_s": 120})
    at(200)
    relay[0].cut()
    print("uplink cut")
    at(230)
    post(http, {"asset_id": "bat-1", "mw": 0.004, "ttl_s": 60})
    at(260)
    post(http, {"asset_id": "bat-1", "mw": 0.0025, "ttl_s": 300})
    at(380)
    relay[0].restore()
    print("uplink restored")
    at(560)
    gw.stop()
    he.stop()
    sim.kill()
    t_to = int(time.time() * 1000)
    export(tmp, db, inv, "depot", t_from, t_to, os.path.join(OUT, "ttl-export"))
    run([DERSIM, "import", "--site-json", OUT + "/ttl-export/site.json", "--name",
         "depot-dispatch-after-ttl", "--out", OUT + "/depot-dispatch-after-ttl",
         OUT + "/ttl-export/records.csv"])


def spool(tmp):
    """The uplink cut for 3 minutes on a gateway whose memory queue holds 8 telemetry messages
    (2 devices every 10 s: 40 s of telemetry): at the reconnect the headend gets the last 8,
    the rest is lost (the gateway logs event=telemetry_dropped)."""
    relay = []

    def via_relay(port):
        relay.append(Relay(port))
        return relay[0].port

    sim, he, gw, db, http, inv, t_from = field_system(tmp, REL + "/field-spool.json", "kiosk",
                                                      via_relay, {"queue_len": 8})
    t0 = time.monotonic()

    def at(s):
        time.sleep(max(0.0, t0 + s - time.monotonic()))

    at(80)
    relay[0].cut()
    print("uplink cut")
    at(260)
    relay[0].restore()
    print("uplink restored")
    at(340)
    gw.stop()
    he.stop()
    sim.kill()
    with open(os.path.join(tmp, "gateway-kiosk.log"), errors="replace") as f:
        drops = [ln.strip() for ln in f if "event=telemetry_dropped" in ln]
    print("gateway: %d telemetry_dropped lines%s"
          % (len(drops), (": " + drops[-1]) if drops else ""))
    t_to = int(time.time() * 1000)
    export(tmp, db, inv, "kiosk", t_from, t_to, os.path.join(OUT, "spool-export"))
    run([DERSIM, "import", "--site-json", OUT + "/spool-export/site.json", "--name",
         "kiosk-headend-outage-spool", "--out", OUT + "/kiosk-headend-outage-spool",
         OUT + "/spool-export/records.csv"])


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    if which == "all":
        ps = [subprocess.Popen([sys.executable, __file__, w])
              for w in ("oscillation", "ttl", "spool")]
        return max(p.wait() for p in ps)
    tmp = tempfile.mkdtemp(prefix="derloop-records-")
    try:
        {"oscillation": oscillation, "ttl": ttl, "spool": spool}[which](tmp)
        return 0
    finally:
        for p in procs:
            p.stop(signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
