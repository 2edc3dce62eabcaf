#!/usr/bin/python3
"""A damaged desired-config.json in the spool dir (gateway/control/confsync.c; FINDINGS.md
finding 11): each of these was taken wrongly at start before, and must now be refused with a
config_rejected line naming the file and the field, the file's own policy running:
- a directory in the file's place: silently taken for "nothing pushed";
- "version": 1e300: cast to uint64 (undefined behaviour), ran as version 0;
- "version": 1.5: ran as version 1;
- no "config": reported the version as running while the file's policy ran.
And estop.json as a directory holds the stop naming the real cause (it said "Input/output
error")."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from hostile import BIN, check, dersim, mktemp, run_main, write_json  # noqa: E402

CASES = [
    ("directory", None, "reason=\"Is a directory\""),
    ("huge version", '{"version": 1e300, "config": {"strategy": "null"}}',
     "version: must be a whole number in 1..2^53, got 1e+300"),
    ("fractional version", '{"version": 1.5, "config": {"strategy": "null"}}',
     "version: must be a whole number in 1..2^53, got 1.5"),
    ("no config", '{"version": 4}', "config: required"),
]


def run_gateway(tmp, cfg):
    path = write_json(tmp, "gw.json", cfg)
    p = subprocess.run([os.path.join(BIN, "der-gateway"), "--config", path, "--duration",
                        "300ms"], capture_output=True, timeout=20)
    return (p.stderr + p.stdout).decode(errors="replace")


def main():
    tmp = mktemp()
    _, cfgs = dersim(tmp)
    cfg = list(cfgs.values())[0]
    spool = os.path.join(tmp, "spool")
    cfg["uplink"] = {"spool_dir": spool}
    want_strategy = cfg.get("strategy", "net_zero")
    for name, text, want in CASES:
        os.makedirs(spool, exist_ok=True)
        target = os.path.join(spool, "desired-config.json")
        if text is None:
            os.mkdir(target)
        else:
            with open(target, "w") as f:
                f.write(text)
        log = run_gateway(tmp, cfg)
        rej = [x for x in log.splitlines() if "event=config_rejected source=persisted" in x]
        check(rej and want in rej[0] and "desired-config.json" in rej[0],
              "%s: wanted config_rejected with %r: %s" % (name, want, log[-800:]))
        check("event=config_loaded" not in log and "strategy=%s" % want_strategy in log,
              "%s: the file's policy should run: %s" % (name, log[-800:]))
        print("ok: %s refused: %s" % (name, rej[0].split("reason=", 1)[1][-90:]))
        if text is None:
            os.rmdir(target)
        else:
            os.unlink(target)
    os.mkdir(os.path.join(spool, "estop.json"))
    log = run_gateway(tmp, cfg)
    check("event=estop state=engaged" in log and "(Is a directory): held" in log,
          "estop.json as a directory: %s" % log[-600:])
    print("ok: estop.json as a directory holds the stop, saying why")


if __name__ == "__main__":
    run_main(main)
