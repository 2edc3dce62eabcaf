#!/usr/bin/python3
"""Hostile field records for `der-sim import` (sim/run/import.c, common/caltime.c), each of
which was mishandled before (tests/hostile/FINDINGS.md, findings 7-10):
- 200 000 records with jittered intervals: the median interval was an insertion sort,
  quadratic (past 30 s here; hours for a million records); now well under the limit;
- a 65th column: silently dropped with its data (pv_w, battery_w after 62 others);
- a NUL byte inside a line: the cells after it were lost (or the line taken as blank);
- 1e308 W: written to field.csv as a truncated 47-digit number, the load as inf;
- 16 digits of Unix seconds: overflowed int64 ms, reported as "out of memory" or as
  "times must be strictly increasing". Each must now be refused naming the line."""

import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from hostile import BIN, Fail, check, mktemp, run_main  # noqa: E402

BASE = 1767225600  # 2026-01-01T00:00:00Z


def imp(tmp, name, data, timeout=15):
    path = os.path.join(tmp, name + ".csv")
    with open(path, "wb") as f:
        f.write(data)
    try:
        p = subprocess.run([os.path.join(BIN, "der-sim"), "import", "--capacity-kwh", "10",
                            "--out", os.path.join(tmp, "out-" + name), path],
                           capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Fail("%s: der-sim import still running after %d s" % (name, timeout))
    return p.returncode, p.stderr.decode(errors="replace")


def refused(tmp, name, data, want):
    rc, err = imp(tmp, name, data)
    check(rc != 0 and want in err, "%s: exit %d, wanted an error with %r: %s" %
          (name, rc, want, err.strip()[-300:]))
    print("ok: %s refused: %s" % (name, err.strip().splitlines()[-1]))


def main():
    tmp = mktemp()
    rnd = random.Random(1)
    t, rows = BASE * 1000, [b"unix_ms,grid_w,pv_w"]
    for _ in range(200000):
        t += rnd.randint(500, 1500)
        rows.append(b"%d,1000,500" % t)
    start = time.monotonic()
    rc, err = imp(tmp, "jitter", b"\n".join(rows) + b"\n")
    check(rc == 0, "jitter: exit %d: %s" % (rc, err[-300:]))
    print("ok: 200000 jittered records imported in %.1f s" % (time.monotonic() - start))

    hdr = b"unix_s,grid_w," + b",".join(b"x%d" % i for i in range(62)) + b",pv_w,battery_w"
    body = b"".join(b"%d,1000," % (BASE + i) + b"0," * 62 + b"500,100\n" for i in range(5))
    refused(tmp, "cols65", hdr + b"\n" + body, "cols65.csv:1: more than 64 columns")
    refused(tmp, "nul", b"unix_s,grid_w,pv_w\n%d,1000\x00,500\n%d,1,2\n" % (BASE, BASE + 1),
            "nul.csv:2: NUL byte")
    refused(tmp, "nulfirst", b"unix_s,grid_w\n\x00%d,1\n%d,1\n%d,2\n" % (BASE, BASE, BASE + 1),
            "nulfirst.csv:2: NUL byte")
    refused(tmp, "huge", b"unix_s,grid_w\n%d,1e308\n%d,1\n" % (BASE, BASE + 1),
            "huge.csv:2: grid_w must be below 1e12 in magnitude")
    refused(tmp, "epoch16", b"unix_s,grid_w\n-9000000000000000,1\n9000000000000000,1\n",
            "epoch16.csv:2: time must be Unix seconds (in the years 0000..9999)")


if __name__ == "__main__":
    run_main(main)
