#!/usr/bin/env python3
"""NetZero behaviour in the lockstep runner, read from timeseries.csv:
- netzero-load-step: after a 3 kW load step the grid returns within 150 W of zero in under
  30 s, with an overshoot (export) under 20 % of the step; the same after the 2.5 kW drop.
- netzero-latency-tuned: on a slow site (2 s setpoint latency, 3 s meter refresh) the tuned
  gains stay stable (grid standard deviation under 100 W after the transient).
- netzero-latency-untuned: the same site with fast-site gains oscillates (standard deviation
  above 500 W, the grid changing sign many times)."""
import csv
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BUILD", "build")
DERSIM = os.path.join(ROOT, BUILD, "bin", "der-sim")


def run(name, out):
    p = subprocess.run([DERSIM, "run", os.path.join(ROOT, "scenarios", name + ".json"),
                        "--transport", "inproc", "--quiet", "--out", out],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        sys.exit("der-sim run %s failed (%d): %s %s" % (name, p.returncode, p.stdout, p.stderr))
    with open(os.path.join(out, "timeseries.csv")) as f:
        return [(float(r["time_s"]), float(r["grid_w"])) for r in csv.DictReader(f)]


def settling(series, t_step, t_end, band_w):
    """Seconds from t_step until the grid stays within +/- band_w up to t_end."""
    last_out = t_step
    for t, g in series:
        if t_step < t <= t_end and abs(g) > band_w:
            last_out = t
    return last_out - t_step


failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)


with tempfile.TemporaryDirectory() as tmp:
    s = run("netzero-load-step", os.path.join(tmp, "step"))
    up = settling(s, 600, 1200, 150)
    over_up = max(0.0, -min(g for t, g in s if 600 < t <= 700)) / 3000 * 100
    down = settling(s, 1200, 1800, 150)
    over_down = max(0.0, max(g for t, g in s if 1200 < t <= 1300)) / 2500 * 100
    check(up <= 30, "load step up: settles in %.0f s (<= 30 s)" % up)
    check(over_up <= 20, "load step up: overshoot %.1f %% of the step (<= 20 %%)" % over_up)
    check(down <= 30, "load step down: settles in %.0f s (<= 30 s)" % down)
    check(over_down <= 20, "load step down: overshoot %.1f %% of the step (<= 20 %%)" % over_down)

    t = run("netzero-latency-tuned", os.path.join(tmp, "tuned"))
    late = [g for tt, g in t if 900 <= tt < 1800]
    sd = statistics.pstdev(late)
    check(sd < 100, "slow site, tuned: grid std %.0f W after the transient (< 100 W)" % sd)
    check(max(map(abs, late)) < 300, "slow site, tuned: |grid| stays under 300 W")

    u = run("netzero-latency-untuned", os.path.join(tmp, "untuned"))
    late = [g for tt, g in u if 900 <= tt < 1800]
    sd = statistics.pstdev(late)
    flips = sum(1 for a, b in zip(late, late[1:]) if (a > 0) != (b > 0))
    check(sd > 500, "slow site, untuned: grid std %.0f W (> 500 W: it oscillates)" % sd)
    check(flips > 50, "slow site, untuned: grid changes sign %d times in 15 min (> 50)" % flips)

sys.exit(1 if failures else 0)
