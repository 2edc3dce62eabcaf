#!/usr/bin/python3
"""The live web console in a real browser (headless Chromium, python3-selenium with
chromium-driver): `der-sim serve` with three sites in two groups, a der-gateway per site, and
der-headend with tokens (--auth). The console asks for a token; with a viewer token it shows
the three sites and the dispatch form is disabled; with an operator token the test opens a
site, sees its power chart grow, sends a site dispatch from the form and sees it go SENT ->
RECEIVED -> APPLIED, then a group dispatch that reaches both sites of the group. The page is
live by the event stream (GET /events): its status line says "live (stream)" and the site's
telemetry points arrive as events; against a headend without event streams it falls back to
polling and says so.

Screenshots are kept in the test's temporary directory (its path is printed; kept after the
run). UPDATE=1 copies the site page's screenshot to docs/console.png (the README shows it).
Only 127.0.0.1; everything started is stopped on any exit."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dersim import BUILD, ROOT, DerSim, Fail, check, wait_until  # noqa: E402
from test_e2e_headend import Proc, procs  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

GATEWAY = os.path.join(ROOT, BUILD, "bin", "der-gateway")
HEADEND = os.path.join(ROOT, BUILD, "bin", "der-headend")
CHROMEDRIVER = "/usr/bin/chromedriver"
SITES = {"north-1": "north", "north-2": "north", "south-1": "south"}


def scenario():
    """Three small sites; asset ids carry the site id, as the headend's inventory wants."""
    def site(sid, pv_kw, soc):
        return {"id": sid, "assets": [
            {"id": sid + "-grid", "type": "meter", "role": "grid", "refresh": "1s"},
            {"id": sid + "-bat-1", "type": "battery", "capacity_kwh": 10, "max_charge_kw": 5,
             "max_discharge_kw": 5, "soc_init": soc},
            {"id": sid + "-bat-2", "type": "battery", "capacity_kwh": 5, "max_charge_kw": 3,
             "max_discharge_kw": 3, "soc_init": soc + 0.2},
            {"id": sid + "-pv", "type": "pv", "peak_kw": pv_kw, "irradiance": "sun"},
            {"id": sid + "-load", "type": "load", "profile": "load"}]}
    return {
        "name": "console-test", "seed": 3, "start": "2026-06-21T09:00:00Z", "duration": "1d",
        "step": "1s",
        "profiles": {"sun": {"type": "clear_sky", "latitude": 48.1, "longitude": 11.6},
                     "load": {"type": "series", "interpolation": "linear", "repeat": "1h",
                              "points": [["0s", 3000], ["30m", 6000], ["59m", 3000]]}},
        "sites": [site("north-1", 8, 0.4), site("north-2", 5, 0.5), site("south-1", 3, 0.3)],
        "gateway": {"strategy": "null", "params": {}, "poll_period": "1s"},
    }


def inventory(sim, tmp):
    sites = []
    for sid, group in SITES.items():
        assets = []
        for d in sim.config(sid)["devices"]:
            a = {"asset_id": d["asset_id"], "type": d["type"]}
            if d["type"] == "battery":
                a.update(capacity_wh=d["capacity_wh"], min_power_w=-d["max_charge_w"],
                         max_power_w=d["max_discharge_w"])
            assets.append(a)
        sites.append({"site_id": sid, "group": group, "gateways": ["gw-" + sid],
                      "assets": assets})
    path = os.path.join(tmp, "inventory.json")
    with open(path, "w") as f:
        json.dump({"sites": sites}, f)
    return path


def token(db, name, role):
    out = subprocess.run([HEADEND, "token", "add", "--name", name, "--role", role, "--db", db],
                         capture_output=True, text=True, timeout=10)
    check(out.returncode == 0, "token add %s: %s" % (name, out.stderr))
    return out.stdout.split()[-1]  # the token is the one word on stdout


def get(base, path, tok):
    req = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + tok})
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, None


def browser(tmp):
    o = Options()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1500,1000", "--user-data-dir=" + os.path.join(tmp, "chrome")):
        o.add_argument(a)
    return webdriver.Chrome(service=Service(CHROMEDRIVER, log_path=os.path.join(tmp, "driver.log")),
                            options=o)


def until(drv, fn, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            v = fn()
            if v:
                return v
        except Exception:  # the page re-renders between lookups: try again
            pass
        time.sleep(0.1)
    shot = os.path.join(TMP, "failure.png")
    drv.save_screenshot(shot)
    raise Fail("%s: not within %.0f s (screenshot %s)" % (what, timeout, shot))


def login(drv, tok):
    until(drv, lambda: drv.find_element(By.ID, "login").is_displayed(), 10, "the token prompt")
    box = drv.find_element(By.ID, "token")
    box.clear()
    box.send_keys(tok)
    drv.find_element(By.ID, "login-btn").click()


def site_rows(drv):
    return [r.get_attribute("data-site") for r in
            drv.find_elements(By.CSS_SELECTOR, "#sites tbody tr.site-row")]


def run(tmp):
    t0 = time.monotonic()
    spath = os.path.join(tmp, "console.json")
    with open(spath, "w") as f:
        json.dump(scenario(), f)
    with DerSim(spath) as sim:
        inv = inventory(sim, tmp)
        db = os.path.join(tmp, "headend.db")
        viewer, operator = token(db, "watcher", "viewer"), token(db, "op", "operator")
        he = Proc([HEADEND, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
                   "--db", db, "--inventory", inv, "--auth"], "headend", tmp, ready=" ready")
        kv = dict(f.split("=", 1) for f in he.ready_line.split() if "=" in f)
        base = "http://" + kv["http"]
        for sid in SITES:
            cfg = sim.config(sid)
            cfg["gateway_id"] = "gw-" + sid
            cfg["uplink"] = {"keepalive_time": "1s", "keepalive_timeout": "1s",
                             "backoff_initial": "200ms", "backoff_max": "1s"}
            cpath = os.path.join(tmp, sid + ".json")
            with open(cpath, "w") as f:
                json.dump(cfg, f)
            Proc([GATEWAY, "-c", cpath, "--headend", kv["grpc"]], "gw-" + sid, tmp)
        ok = wait_until(lambda: (get(base, "/sites", viewer)[1] or {})
                        .get("totals", {}).get("connected") == 3, 15)
        check(ok, "three connected sites in /sites: %s; headend log: %s"
              % (get(base, "/sites", viewer), he.log()))
        print("ok: 3 sites connected to der-headend (%.1f s)" % (time.monotonic() - t0))

        drv = browser(tmp)
        try:
            drv.get(base + "/")
            # a viewer: sees the fleet, may not dispatch
            login(drv, viewer)
            until(drv, lambda: sorted(site_rows(drv)) == sorted(SITES), 10, "three site rows")
            until(drv, lambda: drv.find_element(By.ID, "role").text == "viewer", 5, "role viewer")
            check(not drv.find_element(By.ID, "d-send").is_enabled(),
                  "the dispatch form must be disabled for a viewer")
            # forced past the disabled button, the headend says 403 and the page shows it
            drv.execute_script("for (const e of document.querySelectorAll('#dispatch-form *')) "
                               "e.disabled = false; $('d-kind').value = 'site_id'; "
                               "$('d-target').value = 'north-1'; $('d-send').click();")
            err = until(drv, lambda: drv.find_element(By.ID, "d-error").text, 5, "the 403 shown")
            check(err.startswith("403") and "operator" in err, "the 403 names the role: %s" % err)
            # the table re-renders every second: read it through until() (a stale element is
            # retried) and require three "ok" states
            until(drv, lambda: [e.text for e in drv.find_elements(By.CSS_SELECTOR, "#sites .state")]
                  == ["ok"] * 3, 10, "three sites in state ok")
            drv.save_screenshot(os.path.join(tmp, "fleet.png"))
            print("ok: viewer token: 3 sites in the table, all ok; dispatch form disabled, a "
                  "forced POST shows 403 (%s)" % err)

            # an operator: site page, live chart, dispatch lifecycle
            drv.execute_script("sessionStorage.clear(); location.reload();")
            login(drv, operator)
            until(drv, lambda: drv.find_element(By.ID, "role").text == "operator", 10,
                  "role operator")
            until(drv, lambda: len(site_rows(drv)) == 3, 10, "site rows")
            drv.find_element(By.CSS_SELECTOR, '#sites tr[data-site="north-1"]').click()
            until(drv, lambda: drv.find_element(By.ID, "site-view").is_displayed(), 5, "site page")
            n0 = until(drv, lambda: drv.execute_script(
                "return powerChart && powerChart.data.datasets[0].data.length"), 10,
                "grid power on the chart")
            until(drv, lambda: drv.execute_script(
                "return powerChart.data.datasets[0].data.length") >= n0 + 2, 10,
                "the power chart to grow")
            # the points came by the event stream (GET /events), not by polling
            until(drv, lambda: drv.find_element(By.ID, "conn").text.startswith("live (stream)"),
                  10, "status line 'live (stream)'")
            until(drv, lambda: drv.execute_script("return st.pointsStreamed || 0") >= 3, 10,
                  "telemetry points from the event stream")
            nsoc = drv.execute_script("return socChart.data.datasets.length")
            check(nsoc == 2, "one SoC series per battery, got %s" % nsoc)
            print("ok: site page: power chart grows (%d -> %d+ points) by the event stream "
                  "(status 'live (stream)'), 2 SoC series" % (n0, n0 + 2))
            check(drv.find_element(By.ID, "d-target").get_attribute("value") == "north-1",
                  "the form targets the open site")
            mw = drv.find_element(By.ID, "d-mw")
            mw.clear()
            mw.send_keys("-0.004")
            drv.find_element(By.ID, "d-send").click()
            sp = until(drv, lambda: drv.find_element(
                By.CSS_SELECTOR, '#d-status .sp[data-state="APPLIED"]'), 10, "APPLIED")
            life = sp.text.replace("\n", " ")
            check("SENT" in life and "RECEIVED" in life and "APPLIED" in life and
                  life.index("SENT") < life.index("RECEIVED") < life.index("APPLIED"),
                  "lifecycle %r" % life)
            until(drv, lambda: "APPLIED" in drv.find_element(By.ID, "dispatches").text, 5,
                  "the dispatch in the site's history")
            # a poll or two more, for a screenshot with the setpoint in effect (for the docs'
            # picture, half a minute of live chart)
            time.sleep(30 if os.environ.get("UPDATE") == "1" else 1.5)
            shot = os.path.join(tmp, "site.png")
            drv.save_screenshot(shot)
            print("ok: site dispatch from the form: %s" % life)

            Select(drv.find_element(By.ID, "d-kind")).select_by_value("group_id")
            tgt = drv.find_element(By.ID, "d-target")
            tgt.clear()
            tgt.send_keys("north")
            mw.clear()
            mw.send_keys("0.004")
            drv.find_element(By.ID, "d-send").click()
            until(drv, lambda: len(drv.find_elements(
                By.CSS_SELECTOR, '#d-status .sp[data-state="APPLIED"]')) == 2, 10,
                "both sites of group north APPLIED")
            summary = drv.find_element(By.ID, "d-summary").text
            check(summary == "2 APPLIED", "group summary %r" % summary)
            print("ok: group dispatch from the form: %s" % summary)
            if os.environ.get("UPDATE") == "1":
                shutil.copyfile(shot, os.path.join(ROOT, "docs", "console.png"))
                print("updated docs/console.png")

            # without event streams (--http-max-event-streams 0: /events answers 404) the page
            # falls back to polling after three failures and says so
            he2 = Proc([HEADEND, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
                        "--db", os.path.join(tmp, "headend.db-nostream"), "--inventory", inv,
                        "--http-max-event-streams", "0"], "headend-nostream", tmp, ready=" ready")
            kv2 = dict(f.split("=", 1) for f in he2.ready_line.split() if "=" in f)
            drv.execute_script("sessionStorage.clear();")
            drv.get("http://" + kv2["http"] + "/")
            until(drv, lambda: "polling: the event stream failed" in
                  drv.find_element(By.ID, "conn").text, 15, "the polling fallback")
            until(drv, lambda: len(site_rows(drv)) == 3, 5, "site rows while polling")
            print("ok: without /events the page polls and says %r"
                  % drv.find_element(By.ID, "conn").text)
        finally:
            drv.quit()
    print("screenshots: %s (fleet.png, site.png)" % tmp)
    print("ok: console in %.1f s" % (time.monotonic() - t0))


def main():
    global TMP
    TMP = tempfile.mkdtemp(prefix="derloop-console-")
    try:
        run(TMP)
    except Fail as e:
        print("FAIL: %s" % e, file=sys.stderr)
        print("logs and screenshots: %s" % TMP, file=sys.stderr)
        return 1
    finally:
        for p in procs:
            p.stop()
        # the artifacts stay (screenshots, logs); the browser profile and the store go
        shutil.rmtree(os.path.join(TMP, "chrome"), ignore_errors=True)
        for name in os.listdir(TMP):
            if name.startswith("headend.db"):
                os.unlink(os.path.join(TMP, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
