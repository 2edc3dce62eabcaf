#!/usr/bin/env python3
"""Fleets end to end, with real processes on loopback:
- `der-sim demo` with 5 sites, in both gateway modes (one multi-site der-gateway, one
  der-gateway per site): every site's assets show up connected in the headend's /agents; SIGINT
  stops it with exit status 0, no child it printed is left, and its state directory is gone;
- `der-sim inventory` of a varied fleet: unique ids, groups, and the same bytes twice;
- the multi-site gateway with one site whose devices never answer: the other sites keep their
  cycle counts (their stop lines), the stalled site holds one worker, not the schedule."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from dersim import DerSim, Fail, ROOT, BUILD, DERSIM, check  # noqa: E402

GATEWAY = os.path.join(ROOT, BUILD, "bin", "der-gateway")
FLEET = os.path.join(ROOT, "scenarios", "fleet-demo.json")
VARY = os.path.join(ROOT, "tests", "data", "scenarios", "fleet-vary.json")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too (its parent has not reaped it yet)
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def demo(mode, n=5):
    p = subprocess.Popen([DERSIM, "demo", "--sites", str(n), "--status-every", "1s",
                          "--gateways", mode, FLEET], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    info, pids = {}, []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:  # (stderr is read only then: reading it blocks until the end)
                raise Fail("demo %s ended before it was ready: %s" % (mode, p.stderr.read()))
            if line.startswith("console "):
                info["url"] = line.split()[1]
            elif line.startswith("state "):
                info["state"] = line.split()[1]
            elif line.startswith("pids "):
                for k, v in re.findall(r"(\w+)=([\d,]+)", line):
                    pids += [int(x) for x in v.split(",")]
            elif line.startswith("demo ready"):
                break
        check("url" in info and len(pids) == 2 + (n if mode == "per-site" else 1),
              "demo %s: console and pids: %s %s" % (mode, info, pids))
        want = {"site-%d" % (i + 1) for i in range(n)}
        sites = set()
        while time.monotonic() < deadline:
            rows = json.load(urllib.request.urlopen(info["url"] + "agents", timeout=5))
            by_site = {}
            for r in rows:
                by_site.setdefault(r["site_id"], []).append(r["connected"])
            sites = {s for s, c in by_site.items() if all(c)}
            if sites == want and len(rows) == 4 * n:  # grid, bat, pv, evse per site
                break
            time.sleep(0.2)
        check(sites == want, "demo %s: connected sites %s, want %s" % (mode, sites, want))
        check(all(r["asset_id"].startswith(r["site_id"] + ":") for r in rows),
              "demo %s: asset ids namespaced by site: %s" % (mode, rows[:2]))
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=20)
        out = p.stdout.read()
        err = p.stderr.read()
        check(rc == 0, "demo %s: exit %d: %s" % (mode, rc, err))
        check("demo stopped" in out, "demo %s: no stop line: %s" % (mode, out))
        left = [x for x in pids if alive(x)]
        check(not left, "demo %s: children left behind: %s" % (mode, left))
        check(not os.path.exists(info["state"]), "demo %s: %s not removed" % (mode, info["state"]))
        print("demo %s: %d sites connected, stopped in %.1f s" % (mode, n, time.monotonic() - t0))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for x in pids:  # only what this demo printed
            if alive(x):
                os.kill(x, signal.SIGKILL)


def inventory():
    out = [subprocess.run([DERSIM, "inventory", VARY], check=True, capture_output=True).stdout
           for _ in range(2)]
    check(out[0] == out[1], "inventory: two runs differ")
    inv = json.loads(out[0])
    ids = [a["asset_id"] for s in inv["sites"] for a in s["assets"]]
    check(len(ids) == len(set(ids)), "inventory: asset ids not unique")
    check(inv["sites"][0]["site_id"] == "home-01" and inv["sites"][0]["group"] == "north"
          and inv["sites"][0]["gateways"] == ["gw-home-01"], "inventory: %s" % inv["sites"][0])
    check("home-01:bat" in ids and "grid" in ids, "inventory: ids %s" % ids[:6])
    check(inv["sites"][-1]["group"] == "depots", "inventory: the solo site's group")
    print("inventory: %d sites, %d assets, deterministic" % (len(inv["sites"]), len(ids)))


def isolation():
    """13 sites on 2 workers, poll 250 ms; home-01's devices are a socket that never answers
    (1 s timeout each). The others must not lose cycles to it."""
    hold = socket.socket()
    hold.bind(("127.0.0.1", 0))
    hold.listen(64)  # the kernel accepts the connections; nobody ever reads them
    with DerSim(VARY, "--set", "duration=\"1h\"") as sim, tempfile.TemporaryDirectory() as tmp:
        for s in sim.sites:
            cfg = sim.config(s)
            cfg["poll_period"] = "250ms"
            for d in cfg["devices"]:
                d["timeout"] = "1s" if s == "home-01" else "200ms"
                if s == "home-01":
                    d["port"] = hold.getsockname()[1]
            with open(os.path.join(tmp, s + ".json"), "w") as f:
                json.dump(cfg, f)
        r = subprocess.run([GATEWAY, "--config-dir", tmp, "--workers", "2", "--duration", "4s"],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "multi-site gateway: exit %d: %s" % (r.returncode, r.stderr[-2000:]))
        stops = {m.group(1): (int(m.group(2)), int(m.group(3))) for m in
                 re.finditer(r"event=stop site=(\S+) cycles=(\d+) late=(\d+)", r.stderr)}
        check(len(stops) == len(sim.sites), "stop lines: %s" % stops)
        healthy = [c for s, (c, _) in stops.items() if s != "home-01"]
        # 4 s / 250 ms = 16 cycles; allow the start and the stop a cycle each
        check(min(healthy) >= 14, "healthy sites lost cycles to the stalled one: %s" % stops)
        check(stops["home-01"][0] < min(healthy), "the stalled site: %s" % (stops["home-01"],))
        print("isolation: healthy sites %d..%d cycles, stalled site %d" %
              (min(healthy), max(healthy), stops["home-01"][0]))
    hold.close()


def main():
    inventory()
    isolation()
    demo("multi")
    demo("per-site")
    print("ok")


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print("FAIL:", e)
        sys.exit(1)
