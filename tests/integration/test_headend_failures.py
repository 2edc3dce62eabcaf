#!/usr/bin/python3
"""der-headend failure paths, each against the real binary on 127.0.0.1: an unknown method
gets UNIMPLEMENTED at once; claims of another site's asset are rejected with a reason; an
unlisted gateway is denied; a reconnecting gateway replaces its old session; a killed client
shows disconnected within the keepalive time; dispatches to an offline gateway are delivered
in order on reconnect, or EXPIRED after their TTL; a malformed payload closes that stream
only; every bad POST /dispatch answers 400/404 naming the field."""

import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_headend_peer import (BUILD, Gateway, Headend, check, grpc, pb,  # noqa: E402
                               wait_for)

KILLED_CLIENT = r"""
import sys, time
sys.path.insert(0, sys.argv[2])
sys.path.insert(0, sys.argv[3])
from test_headend_peer import Gateway
gw = Gateway(int(sys.argv[1]))
rr = gw.register("gw-b", "site-b", ["b-bat"])
print("registered", list(rr.accepted), flush=True)
time.sleep(60)
"""


def test_unknown_method(he):
    ch = grpc.insecure_channel("127.0.0.1:%d" % he.grpc_port)
    for method in ("/der.v1.Headend/Nope", "/other.Service/Call"):
        t0 = time.time()
        try:
            ch.unary_unary(method)(b"", timeout=10)
            check(False, "unknown method answered OK")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.UNIMPLEMENTED, "%s: %s" % (method, e.code()))
        dt = time.time() - t0
        check(dt < 1.0, "UNIMPLEMENTED took %.2f s" % dt)
    ch.close()
    print("ok: unknown methods get UNIMPLEMENTED in %.0f ms" % (dt * 1000))


def test_claims(he):
    gw = Gateway(he.grpc_port)
    rr = gw.register("gw-a", "site-a", ["a-bat", "b-bat", "zz-unknown"])
    rej = {r.asset_id: r.reason for r in rr.rejected}
    check(list(rr.accepted) == ["a-bat"], "accepted %r" % (rr,))
    check("site-b" in rej.get("b-bat", "") and "unknown" in rej.get("zz-unknown", ""),
          "rejections %r" % rej)
    # telemetry for a rejected asset is dropped, not stored
    gw.telemetry("b-bat", 5.0, 1)
    gw.telemetry("a-bat", 6.0, 1)
    check(wait_for(lambda: he.http("GET", "/telemetry/a-bat")[0] == 200, 3), "a-bat telemetry")
    check(he.http("GET", "/telemetry/b-bat")[0] == 404, "b-bat telemetry was accepted")
    check("event=claim_rejected gateway=gw-a site=site-a asset=b-bat" in he.logtext(),
          "claim rejection not logged")
    print("ok: a claim of another site's asset is rejected: %s" % rej["b-bat"])

    bad = Gateway(he.grpc_port)
    rr = bad.register("gw-x", "site-a", ["a-pv"])
    check(not rr.accepted and "not allowed" in rr.rejected[0].reason, "gw-x: %r" % (rr,))
    check(bad.done.wait(5) and bad.status[0] == grpc.StatusCode.PERMISSION_DENIED,
          "unlisted gateway stream status %r" % (bad.status,))
    bad.close()
    print("ok: an unlisted gateway is denied: %s" % bad.status[1])

    # the same gateway reconnects: the old session is replaced cleanly
    gw2 = Gateway(he.grpc_port)
    rr = gw2.register("gw-a", "site-a", ["a-bat", "a-pv"])
    check(len(rr.accepted) == 2, "re-register %r" % (rr,))
    check(gw.done.wait(5) and gw.status[0] == grpc.StatusCode.ABORTED
          and "replaced" in gw.status[1], "old stream status %r" % (gw.status,))
    ag = he.agents()
    check(ag["a-pv"]["connected"] and ag["a-bat"]["connected"], "agents %r" % ag)
    gw.close()
    print("ok: a reconnecting gateway replaces its old session (%s)" % gw.status[1])
    return gw2


def test_malformed(he, good):
    raw = grpc.insecure_channel("127.0.0.1:%d" % he.grpc_port)
    call = raw.stream_stream("/der.v1.Headend/Connect", request_serializer=lambda b: b,
                             response_deserializer=lambda b: b)
    t0 = time.time()
    try:
        list(call(iter([b"\xff\xff\xff\xff\x0f"]), timeout=5))
        check(False, "malformed stream ended OK")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, "malformed: %s" % e.code())
    check(time.time() - t0 < 2, "malformed close took too long")
    raw.close()
    # the other stream still works both ways
    good.telemetry("a-pv", 42.0, 7)
    check(wait_for(lambda: he.http("GET", "/telemetry/a-pv")[1].get("power_w") == 42.0, 3),
          "good stream telemetry after the malformed one")
    st, d = he.http("POST", "/dispatch", {"asset_id": "a-pv", "mw": 0.25})
    m = good.next(5)
    check(st == 202 and m and m.setpoint.setpoint_id == d["setpoint_id"]
          and m.setpoint.asset_id == "a-pv", "dispatch after malformed: %r" % (m,))
    print("ok: a malformed payload closes that stream only (INVALID_ARGUMENT)")


def test_killed_client(he, ka_s):
    here = os.path.dirname(os.path.abspath(__file__))
    p = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, str(he.grpc_port), here,
                          os.path.join(BUILD, "gen", "py")], stdout=subprocess.PIPE)
    try:
        line = p.stdout.readline().decode()
        check("registered ['b-bat']" in line, "child: %r" % line)
        check(he.agents()["b-bat"]["connected"], "child not shown connected")
        t0 = time.time()
        p.send_signal(signal.SIGKILL)
        p.wait()
        check(wait_for(lambda: not he.agents()["b-bat"]["connected"], ka_s + 2),
              "killed client still connected")
        dt = time.time() - t0
        check(dt < ka_s, "disconnect seen after %.2f s (keepalive %.1f s)" % (dt, ka_s))
        print("ok: a killed client shows disconnected in /agents after %.0f ms" % (dt * 1000))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_offline_dispatch(he):
    ids = []
    for mw in (0.1, 0.2, 0.3):
        st, d = he.http("POST", "/dispatch", {"asset_id": "b-bat", "mw": mw, "ttl_s": 60})
        check(st == 202 and d["state"] == "QUEUED", "offline dispatch %d %r" % (st, d))
        ids.append(d["setpoint_id"])
    st, exp = he.http("POST", "/dispatch", {"site_id": "site-b", "mw": 0.5, "ttl_s": 1})
    check(st == 202 and exp["state"] == "QUEUED", "ttl dispatch %r" % (exp,))
    check(wait_for(lambda: he.http("GET", "/dispatch/" + exp["setpoint_id"])[1]["state"]
                   == "EXPIRED", 3), "dispatch not EXPIRED after its TTL")
    print("ok: a dispatch to an offline gateway is EXPIRED after its TTL (1 s)")
    gw = Gateway(he.grpc_port)
    gw.register("gw-b2", "site-b", ["b-bat"])  # the site's other allowed gateway
    got = []
    for _ in range(3):
        m = gw.next(5)
        check(m and m.HasField("setpoint"), "missing replayed setpoint")
        got.append((m.setpoint.setpoint_id, round(m.setpoint.power_w)))
    check(got == [(ids[0], 100000), (ids[1], 200000), (ids[2], 300000)],
          "replay order %r" % got)
    check(gw.next(0.5) is None, "the expired dispatch was delivered")
    for sp, _ in got:
        gw.ack(sp, pb.SetpointAck.APPLIED, [("b-bat", 1.0)])
    check(wait_for(lambda: all(he.http("GET", "/dispatch/" + i)[1]["state"] == "APPLIED"
                               for i in ids), 3), "replayed dispatches not APPLIED")
    gw.close()
    print("ok: queued dispatches are delivered in order on reconnect: %s" % [g[0] for g in got])


def test_rest_validation(he):
    cases = [
        (b"{not json", 400, "body"),
        ({"mw": 1}, 400, "asset_id|site_id|group_id"),
        ({"asset_id": "nope", "mw": 1}, 404, "asset_id"),
        ({"site_id": "nope", "mw": 1}, 404, "site_id"),
        ({"asset_id": 5, "mw": 1}, 400, "asset_id"),
        ({"asset_id": "a-bat"}, 400, "mw"),
        ({"asset_id": "a-bat", "mw": "1"}, 400, "mw"),
        (b'{"asset_id": "a-bat", "mw": 1e999}', 400, "mw"),
        ({"asset_id": "a-bat", "mw": 50}, 400, "mw"),
        ({"asset_id": "a-bat", "mw": 1, "ttl_s": 0}, 400, "ttl_s"),
        ({"asset_id": "a-bat", "mw": 1, "ttl_s": 10 ** 9}, 400, "ttl_s"),
        ({"asset_id": "a-bat", "mw": 1, "ttl_s": "x"}, 400, "ttl_s"),
    ]
    for body, status, field in cases:
        st, e = he.http("POST", "/dispatch", body)
        check(st == status and e.get("field") == field,
              "POST %r -> %d %r, want %d %s" % (body, st, e, status, field))
    check(he.http("GET", "/dispatch/sp-999999")[0] == 404, "unknown dispatch id")
    check(he.http("GET", "/telemetry/nope")[1]["field"] == "asset_id", "unknown telemetry asset")
    check(he.http("GET", "/telemetry/a-bat?from=abc")[1]["field"] == "from", "bad from")
    check(he.http("GET", "/nowhere")[0] == 404, "unknown path")
    print("ok: %d bad POST /dispatch bodies answer 400/404 naming the field" % len(cases))


def main():
    tmp = tempfile.mkdtemp(prefix="headend-fail-")
    ka_ms = 1000
    he = Headend(tmp, ["--keepalive-time", "%dms" % ka_ms, "--keepalive-timeout", "1s",
                       "--min-ping-interval", "500ms"])
    good = None
    try:
        test_unknown_method(he)
        good = test_claims(he)
        test_malformed(he, good)
        test_killed_client(he, (ka_ms + 1000) / 1000.0)
        test_offline_dispatch(he)
        test_rest_validation(he)
        check(he.stop() == 0, "exit status after SIGTERM")
    except Exception:
        print(he.logtext()[-4000:])
        raise
    finally:
        if good:
            good.close()
        he.stop(signal.SIGKILL)
    print("PASS")


if __name__ == "__main__":
    main()
