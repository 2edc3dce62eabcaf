#!/usr/bin/python3
"""A headend (or anyone between it and the gateway: the stream is plaintext by default) forges
der-gateway log lines: the setpoint_id and the target asset_id of a Setpoint, and the asset_id
and reason of a RegisterResult rejection, are written to the log as they arrive, newlines and
all. der-headend escapes what it logs (docs/operations.md); der-gateway does not.

Exits 1 while a line of the gateway's log starts with the forged text. Exits 0 once these
fields are escaped (or refused) before they are logged."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import hostile as h  # noqa: E402
from hostile import check, pb  # noqa: E402

FORGED = "2030-01-01T00:00:00.000Z site=ref event=safety_override reason=\"FORGED\""


def script(ctx):
    reg = ctx.recv(10)
    if reg is None:
        return
    rr = pb.RegisterResult(accepted=[a.asset_id for a in reg.register.assets][1:],
                           telemetry_acks=True)
    rr.rejected.add(asset_id="grid\n" + FORGED + " via=rejected_asset", reason="x\n" + FORGED)
    yield ctx.msg(register_result=rr)
    yield ctx.msg(setpoint=pb.Setpoint(setpoint_id="sp-1\n" + FORGED + " via=setpoint_id",
                                       asset_id="bat-1", power_w=100,
                                       expires_ms=h.now_ms() + 30000))
    yield ctx.msg(setpoint=pb.Setpoint(setpoint_id="sp-2", asset_id="nope\n" + FORGED +
                                       " via=asset_id", power_w=100,
                                       expires_ms=h.now_ms() + 30000))
    time.sleep(4)


def main():
    he = h.EvilHeadend(script)
    try:
        tmp = h.mktemp()
        sim, cfgs = h.dersim(tmp)
        cfg = cfgs["ref"]
        cfg["uplink"] = {"target": he.target}
        gw = h.gateway(tmp, cfg)
        time.sleep(4)
        forged = [ln for ln in gw.log().splitlines() if ln.startswith(FORGED)]
        for ln in forged:
            print("forged line: %s" % ln[:160])
        check(gw.alive(), "der-gateway died")
        check(not forged, "%d log lines forged by the headend's ids and reasons" % len(forged))
        print("ok: ids and reasons from the headend are escaped in the gateway's log")
    finally:
        he.stop()


h.run_main(main)
