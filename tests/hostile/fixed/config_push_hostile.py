#!/usr/bin/python3
"""Hostile ConfigPush messages from a headend (gateway/uplink/remote.c,
gateway/control/confsync.c; FINDINGS.md finding 12):
- versions 0 and 2^64-1 were applied and persisted, then refused at the next start (the file
  keeps 1..2^53): now REJECTED at once, naming the version;
- a key or strategy name with \\r in it reached the gateway's log line raw: now replaced.
Malformed JSON, a non-object, a too-large document and an unknown strategy were already
REJECTED naming the field; they are checked here too, with a SIGHUP storm (100 HUPs) running
meanwhile, and a valid push then applies and is persisted."""

import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from hostile import (EvilHeadend, check, dersim, gateway, mktemp, pb, run_main,  # noqa: E402
                     wait_for)

PUSHES = [
    (0, '{"strategy":"null"}', "version must be in 1..2^53"),
    (2**64 - 1, '{"strategy":"null"}', "version must be in 1..2^53"),
    (3, "{", "invalid JSON"),
    (4, "[]", "(root): must be a JSON object"),
    (5, '{"strategy":"null","params":' + "[" * 70000 + "]" * 70000 + "}",
     "configuration too large"),
    (6, '{"strategy":"nope"}', "strategy: unknown strategy"),
    (7, '{"x\\r\\nlevel=error event=forged":1,"strategy":"null"}', "unknown key"),
    (8, '{"strategy":"null"}', None),
]


def main():
    tmp = mktemp()
    _, cfgs = dersim(tmp)
    cfg = list(cfgs.values())[0]
    spool = os.path.join(tmp, "spool")
    reports = []
    go = threading.Event()
    finished = threading.Event()

    def script(ctx):
        reg = ctx.recv(10)
        if reg is None:
            return
        yield ctx.register_result(reg)
        go.wait(10)
        for v, js, _ in PUSHES:
            yield ctx.msg(config_push=pb.ConfigPush(version=v, json=js))
            end = time.monotonic() + 5
            while time.monotonic() < end:
                m = ctx.recv(0.5)
                if m is not None and m.HasField("config_report"):
                    reports.append(m.config_report)
                    break
        finished.wait(30)

    he = EvilHeadend(script)
    cfg["uplink"] = {"spool_dir": spool, "target": he.target, "backoff_initial": "100ms"}
    cfg["poll_period"] = "200ms"
    gw = gateway(tmp, cfg)
    check(wait_for(lambda: "event=registered" in gw.log(), 10), "no register: " + gw.log()[-500:])
    go.set()
    for _ in range(100):  # a SIGHUP storm while the pushes are handled
        gw.send_signal(signal.SIGHUP)
        time.sleep(0.003)
    wait_for(lambda: len(reports) == len(PUSHES), 30)
    check(gw.alive(), "the gateway died: " + gw.log()[-800:])
    check(len(reports) == len(PUSHES), "reports: %s" % [(r.version, r.detail) for r in reports])
    for r, (v, _, want) in zip(reports, PUSHES):
        applied = r.status == pb.ConfigReport.APPLIED
        check(r.version == v and applied == (want is None) and (want is None or want in r.detail),
              "push v%d: report %s %r, wanted %r" % (v, r.status, r.detail, want))
    print("ok: %d hostile pushes answered REJECTED naming the reason, the good one APPLIED, "
          "through 100 SIGHUPs" % (len(PUSHES) - 1))
    gw.stop()
    finished.set()
    he.stop()
    log = gw.log()
    check("\r" not in log, "a raw CR in the gateway's log")
    with open(os.path.join(spool, "desired-config.json")) as f:
        check('"version":\t8' in f.read(), "desired-config.json is not version 8")
    print("ok: no raw control character in the log; version 8 persisted")


if __name__ == "__main__":
    run_main(main)
