#!/usr/bin/python3
"""Attacks the three programs already withstand, kept as tests (tests/hostile/FINDINGS.md lists
the ones they do not, with reproducers in tests/hostile/open/). Real binaries, 127.0.0.1 only:
- der-gateway against a malicious headend: garbage HeadendMessages, a TelemetryAck far ahead of
  anything sent, RegisterResult twice, setpoints with huge, negative, NaN power, expired,
  INT64_MIN and INT64_MAX expiry, a 10 KB id, a meter target, 2,000 setpoints in a burst, then
  the stream ended mid-way: the gateway stays up, never commands the battery past its limits,
  answers each setpoint as docs/protocol.md says, and replays what was not acknowledged;
- der-headend gRPC: control characters in Register ids, NaN/Inf telemetry, acks for another
  site's setpoint, an ack with 10,000 allocations;
- der-headend REST: path traversal, NUL, bad numbers, odd methods, oversized bodies, headers
  and URLs, JSON nested 100,000 deep;
- der-sim serve: every malformed Modbus frame kind, 300 connections at once;
- der-gateway --check: 30 absurd configurations, each refused naming the file and the field."""

import copy
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import shutil
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "hostile", "lib"))
import hostile as h  # noqa: E402
from hostile import check, pb  # noqa: E402

sys.path.insert(0, HERE)
from test_headend_peer import Gateway, Headend  # noqa: E402


# ---- der-gateway against a malicious headend -------------------------------------------------

def evil_script(state):
    def script(ctx):
        reg = ctx.recv(10)
        if reg is None:
            return
        yield ctx.register_result(reg, acks=True)
        if ctx.n > 1:  # later streams: a correct headend that acknowledges everything
            end = time.monotonic() + 6
            while time.monotonic() < end:
                m = ctx.recv(0.3)
                if m is not None:
                    yield ctx.msg(telemetry_ack=pb.TelemetryAck(through_seq=m.seq))
            return
        exp = h.now_ms() + 60000

        def sp(sid, **kw):
            return ctx.msg(setpoint=pb.Setpoint(setpoint_id=sid, **kw))
        yield b"\xff\xff\xff\xff\x0fgarbage"
        yield ctx.msg(telemetry_ack=pb.TelemetryAck(through_seq=2 ** 64 - 1))
        yield ctx.register_result(reg, acks=True)
        yield sp("sp-huge", asset_id="bat-1", power_w=1e12, expires_ms=exp)
        time.sleep(1.5)
        yield sp("sp-neg", asset_id="bat-1", power_w=-1e308, expires_ms=2 ** 63 - 1)
        time.sleep(1.5)
        yield sp("sp-nan", asset_id="bat-1", power_w=float("nan"), expires_ms=exp)
        yield sp("sp-past", asset_id="bat-1", power_w=100, expires_ms=1)
        yield sp("sp-min", asset_id="bat-1", power_w=100, expires_ms=-2 ** 63)
        yield sp("x" * 10240, asset_id="bat-1", power_w=100, expires_ms=exp)
        yield sp("sp-meter", asset_id="grid", power_w=1e9, expires_ms=exp)
        yield sp("sp-pv", asset_id="pv-1", power_w=-1e9, expires_ms=exp)
        yield sp("sp-evse", asset_id="evse-1", power_w=1e9, expires_ms=exp)
        yield sp("sp-site", site_id="ref", power_w=-1e15, expires_ms=exp)
        yield sp("sp-other-site", site_id="elsewhere", power_w=1, expires_ms=exp)
        time.sleep(1.5)
        for i in range(2000):
            yield sp("fl-%d" % i, asset_id="bat-1", power_w=(-1) ** i * 1e7, expires_ms=exp)
        time.sleep(1.5)
        state["first_stream_ended"] = True  # ends with OK, nothing acknowledged on it
    return script


def test_evil_headend():
    state = {}
    he = h.EvilHeadend(evil_script(state))
    try:
        tmp = h.mktemp()
        sim, cfgs = h.dersim(tmp)
        cfg = cfgs["ref"]
        cfg["uplink"] = {"target": he.target, "spool_dir": os.path.join(tmp, "spool"),
                         "backoff_initial": "100ms", "backoff_max": "300ms"}
        gw = h.gateway(tmp, cfg)
        ok = h.wait_for(lambda: he.streams >= 2 and state.get("first_stream_ended"), 20, 0.2)
        check(ok, "the malicious headend's first stream did not end (streams=%d)" % he.streams)
        time.sleep(3)
        check(gw.alive(), "der-gateway died: %s" % gw.log()[-1500:])
        log = gw.log()
        check("event=bad_message" in log, "no bad_message line for garbage / a 10 KB id")
        with he.lock:
            received = list(he.received)
        acks = {}
        for m in received:
            if m.WhichOneof("body") == "setpoint_ack":
                a = m.setpoint_ack
                acks.setdefault(a.setpoint_id, []).append(
                    (pb.SetpointAck.State.Name(a.state), a.detail,
                     {x.asset_id: x.power_w for x in a.allocations}))

        def final(sid):
            fin = [x for x in acks.get(sid, []) if x[0] != "RECEIVED"]
            return fin[0] if fin else (None, "", {})
        check(final("sp-huge")[0] == "APPLIED" and final("sp-huge")[2].get("bat-1") == 5000,
              "1e12 W: %r" % (acks.get("sp-huge"),))
        check(final("sp-neg")[0] == "APPLIED" and final("sp-neg")[2].get("bat-1") == -5000,
              "-1e308 W with INT64_MAX expiry: %r" % (acks.get("sp-neg"),))
        check(final("sp-nan")[0] == "REJECTED", "NaN: %r" % (acks.get("sp-nan"),))
        check(final("sp-past")[0] == "EXPIRED", "expired: %r" % (acks.get("sp-past"),))
        check(final("sp-min")[0] == "REJECTED", "INT64_MIN: %r" % (acks.get("sp-min"),))
        check(final("sp-meter")[0] == "REJECTED", "meter: %r" % (acks.get("sp-meter"),))
        check(final("sp-other-site")[0] == "REJECTED", "site: %r" % (acks.get("sp-other-site"),))
        check(final("sp-pv")[2].get("pv-1", 0) >= 0, "pv below 0: %r" % (acks.get("sp-pv"),))
        check(final("sp-evse")[2].get("evse-1", 0) <= 11040, "evse: %r" % (acks.get("sp-evse"),))
        check(not any(k.startswith("xxxx") for k in acks), "the 10 KB id was answered")
        flood = sum(1 for k in acks if k.startswith("fl-"))
        check(flood == 2000, "2,000 setpoints in a burst: %d answered" % flood)
        tel = [m.telemetry for m in received if m.WhichOneof("body") == "telemetry"]
        bat = [t for t in tel if t.asset_id == "bat-1"]
        sps = [t.setpoint_w for t in bat if t.setpoint_w == t.setpoint_w]
        check(sps and min(sps) >= -5000 and max(sps) <= 5000,
              "battery setpoint outside [-5000, 5000]: %s..%s" % (min(sps), max(sps)))
        seqs = sorted({t.telemetry_seq for t in bat})
        gaps = [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1]
        check(seqs and not gaps, "bat-1 telemetry_seq gaps after the stream ended: %r" % gaps[:5])
        gw.stop()
        print("ok: der-gateway against a malicious headend: garbage, far-ahead ack, RegisterResult "
              "twice, 1e12/-1e308/NaN W, expired/INT64 expiry, 10 KB id, 2,000-setpoint burst; "
              "battery kept in [-5000, 5000] W, %d bat-1 samples without a gap after the cut"
              % len(seqs))
    finally:
        he.stop()
        h.cleanup()


# ---- der-headend gRPC --------------------------------------------------------------------------

def test_headend_grpc(tmp):
    he = Headend(tmp)
    try:
        g = Gateway(he.grpc_port)
        g.send(register=pb.Register(gateway_id="gw-a\nlevel=error event=forged", site_id="site-a\x00",
                                    software="s\n\x01", assets=[pb.AssetInfo(asset_id="a-bat\x00")]))
        g.done.wait(5)
        check(g.status and g.status[0] == h.grpc.StatusCode.INVALID_ARGUMENT and
              "control character" in g.status[1],
              "control characters in Register: %r" % (g.status,))
        g.close()
        g = Gateway(he.grpc_port)
        rr = g.register("gw-a", "site-a", ["a-bat", "a-pv"], primary="a-bat")
        check(sorted(rr.accepted) == ["a-bat", "a-pv"], "register: %r" % (rr,))
        for i, v in enumerate([float("nan"), float("inf"), float("-inf"), 1e308]):
            g.telemetry("a-bat", v, 100 + i,
                        storage=pb.StorageDetails(soc=float("nan"), temperature_c=float("inf")))
        st, d = he.http("POST", "/dispatch", {"asset_id": "b-bat", "mw": 0.1, "ttl_s": 60})
        check(st == 202, "dispatch to site-b: %s %r" % (st, d))
        g.ack(d["setpoint_id"], pb.SetpointAck.APPLIED, allocations=[("b-bat", 1e9)] * 10000)
        st, d2 = he.http("POST", "/dispatch", {"asset_id": "a-bat", "mw": 0.1, "ttl_s": 60})
        time.sleep(0.3)
        g.ack(d2["setpoint_id"], pb.SetpointAck.APPLIED,
              allocations=[("b-bat", 1e9), ("zzz", float("nan"))] * 5000)
        time.sleep(0.8)
        other = he.http("GET", "/dispatch/" + d["setpoint_id"])[1]
        check(other["state"] == "QUEUED", "another site's ack changed its dispatch: %r" % other)
        st, hist = he.http("GET", "/telemetry/a-bat?from=0")
        check(st == 200 and len(hist["samples"]) == 4 and hist["samples"][0]["power_w"] is None,
              "NaN/Inf telemetry: %s %r" % (st, str(hist)[:300]))
        check(he.http("GET", "/healthz")[0] == 200 and he.p.poll() is None, "headend unwell")
        check(g.status is None, "the stream ended: %r" % (g.status,))
        log = he.logtext()
        check(not any(ln.startswith("level=error event=forged") for ln in log.splitlines()),
              "a Register id forged a headend log line")
        g.close()
        print("ok: der-headend gRPC: control characters in Register ids refused and escaped, "
              "NaN/Inf telemetry stored as null, another site's ack ignored, 10,000 allocations")
    finally:
        he.stop()


# ---- der-headend REST --------------------------------------------------------------------------

def test_headend_rest(tmp):
    he = Headend(tmp)

    def raw(req, timeout=5):
        s = socket.create_connection(("127.0.0.1", he.http_port), timeout=timeout)
        try:
            s.sendall(req)
            out = b""
            while True:
                c = s.recv(65536)
                if not c:
                    break
                out += c
            return int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.1 ") else out[:60]
        finally:
            s.close()

    def req(method, path, body=b"", extra=b""):
        return (b"%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%sContent-Length: %d\r\n\r\n"
                % (method, path, extra, len(body)) + body)
    try:
        deep = b"[" * 100000 + b"]" * 100000
        cases = [
            (req(b"GET", b"/telemetry/..%2f..%2fetc%2fpasswd"), (404,)),
            (req(b"GET", b"/telemetry/%00"), (400,)),
            (req(b"GET", b"/telemetry/a%0d%0aSet-Cookie:x"), (400,)),
            (req(b"GET", b"/telemetry/%ZZ"), (400, 404)),
            (req(b"GET", b"/telemetry/a-bat?from=-9223372036854775808&to=9223372036854775807"
                 b"&limit=999999999999"), (400,)),
            (req(b"GET", b"/telemetry/a-bat?from=1e400&limit=-1"), (400,)),
            (req(b"GET", b"/dispatch/sp-99999999999999999999999"), (404,)),
            (req(b"DELETE", b"/dispatch"), (405,)),
            (req(b"FOO", b"/healthz"), (405, 501)),
            (req(b"POST", b"/dispatch", b'{"asset_id":"a-bat","mw":1e308,"ttl_s":60}'), (400,)),
            (req(b"POST", b"/dispatch", b'{"asset_id":"a-bat","mw":1e999,"ttl_s":60}'), (400,)),
            (req(b"POST", b"/dispatch", b'{"asset_id":"a-bat","mw":0.1,"ttl_s":1e30}'), (400,)),
            (req(b"POST", b"/dispatch", b'{"asset_id":"a-bat","mw":0.1,"ttl_s":-1}'), (400,)),
            (req(b"POST", b"/dispatch", b'{"asset_id":"a-b\\u0000at","mw":0.1}'), (400,)),
            (req(b"POST", b"/dispatch", b'{"asset_id":"a-bat","mw":"0.1"}'), (400,)),
            (req(b"POST", b"/dispatch", b'{"asset_id":"a-bat","mw":0.1'), (400,)),
            (req(b"POST", b"/dispatch", b'\xff\xfe{}'), (400,)),
            (req(b"POST", b"/dispatch", deep), (400, 413)),
            (req(b"POST", b"/dispatch", b'{"x":"' + b"z" * (1 << 20) + b'"}'), (413,)),
            (req(b"GET", b"/" + b"a" * 100000), (414, 431)),
            (req(b"GET", b"/healthz", extra=b"X: " + b"y" * 200000 + b"\r\n"), (431, 413)),
        ]
        for r, want in cases:
            got = raw(r)
            check(got in want, "%r...: got %r, want %r" % (r[:60], got, want))
        st, hz = he.http("GET", "/healthz")
        check(st == 200 and he.p.poll() is None, "healthz after the attacks: %s" % st)
        print("ok: der-headend REST: traversal, NUL/CRLF in paths, bad numbers, odd methods, "
              "1 MiB body, 100,000-deep JSON, 100 KB URL and 200 KB header refused (%d cases)"
              % len(cases))
    finally:
        he.stop()


# ---- der-sim serve: malformed Modbus frames ----------------------------------------------------

def test_dersim_frames():
    tmp = h.mktemp()
    sim, cfgs = h.dersim(tmp)
    port = cfgs["ref"]["devices"][0]["port"]

    def xchg(frame):
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
        s.sendall(frame)
        out = b""
        try:
            while len(out) < 7 or len(out) < 6 + struct.unpack(">H", out[4:6])[0]:
                c = s.recv(4096)
                if not c:
                    return "closed"
                out += c
        except socket.timeout:
            return "timeout"
        finally:
            s.close()
        return out[7:]

    def f(unit, pdu, proto=0, ln=None):
        return struct.pack(">HHHB", 1, proto, len(pdu) + 1 if ln is None else ln, unit) + pdu
    rd = struct.pack(">BHH", 3, 40000, 2)
    cases = [
        (f(0, rd), b"\x83\x0b"), (f(255, rd), b"\x83\x0b"), (f(99, rd), b"\x83\x0b"),
        (f(2, b"\x00"), b"\x80\x01"), (f(2, b"\x83" + rd[1:]), b"\x83\x01"),
        (f(2, b"\x2b\x0e\x01\x00"), b"\xab\x01"), (f(2, b"\x08\x00\x00\xab\xcd"), b"\x88\x01"),
        (f(2, struct.pack(">BHH", 3, 40000, 0)), b"\x83\x03"),
        (f(2, struct.pack(">BHH", 3, 40000, 126)), b"\x83\x03"),
        (f(2, struct.pack(">BHH", 3, 65530, 100)), b"\x83\x02"),
        (f(2, b"\x03\x9c"), b"\x83\x03"),
        (f(2, struct.pack(">BHHB", 16, 40000, 10, 2) + b"\x00\x01"), b"\x90\x03"),
        (f(2, struct.pack(">BHHB", 16, 40000, 1, 250) + b"\x00\x01"), b"\x90\x03"),
        (f(2, struct.pack(">BHHB", 16, 40000, 0, 0)), b"\x90\x03"),
        (f(2, struct.pack(">BHH", 6, 40000, 0)), b"\x86\x02"),
        (f(2, rd, proto=1), "closed"), (f(2, b"", ln=0), "closed"), (f(2, b"", ln=1), "closed"),
        (f(2, rd, ln=65535), "closed"),
    ]
    for fr, want in cases:
        got = xchg(fr)
        check(got == want, "frame %s: got %r, want %r" % (fr.hex(), got, want))
    socks = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(300)]
    try:
        check(xchg(f(2, rd)) == b"\x03\x04\x53\x75\x6e\x53", "no answer with 300 clients open")
    finally:
        for s in socks:
            s.close()
    check(sim.alive(), "der-sim died")
    h.cleanup()
    print("ok: der-sim serve: %d malformed frame kinds answered or closed as Modbus says, "
          "300 connections at once" % len(cases))


# ---- der-gateway --check ----------------------------------------------------------------------

def test_check_absurd():
    tmp = h.mktemp()
    sim, cfgs = h.dersim(tmp)
    sim.kill()
    base = cfgs["ref"]
    muts = [
        ("poll_period", lambda c: c.update(poll_period="0ms")),
        ("poll_period", lambda c: c.update(poll_period="-1s")),
        ("poll_period", lambda c: c.update(poll_period="99999999999999999999999d")),
        ("devices[0].port", lambda c: c["devices"][0].update(port=70000)),
        ("devices[0].port", lambda c: c["devices"][0].update(port=-1)),
        ("devices[0].unit_id", lambda c: c["devices"][0].update(unit_id=256)),
        ("devices[1].max_charge_w", lambda c: c["devices"][1].update(max_charge_w=-5)),
        ("devices[1].max_discharge_w", lambda c: c["devices"][1].update(max_discharge_w="NaN")),
        ("devices[4].phases", lambda c: c["devices"][4].update(phases=2)),
        ("devices[4].min_current_a", lambda c: c["devices"][4].update(min_current_a=32)),
        ("devices[0].timeout", lambda c: c["devices"][0].update(timeout="1h")),
        ("devices[1].asset_id", lambda c: c["devices"][1].update(asset_id="grid")),
        ("devices[1].asset_id", lambda c: c["devices"][1].update(asset_id="b\nx")),
        ("devices[1].asset_id", lambda c: c["devices"][1].update(asset_id="x" * 5000)),
        ("site_id", lambda c: c.update(site_id="")),
        ("site_id", lambda c: c.update(site_id="a/../../b")),
        ("devices[1].host", lambda c: c["devices"][1].update(host="")),
        ("safety.soc_floor", lambda c: c.update(safety={"soc_floor": 0.99, "soc_ceiling": 0.5})),
        ("safety.temp_stop_c", lambda c: c.update(safety={"temp_stop_c": 1e9})),
        ("safety.ramp_w_per_s", lambda c: c.update(safety={"ramp_w_per_s": -1})),
        ("uplink.spool_max_bytes", lambda c: c.update(uplink={"spool_max_bytes": 1})),
        ("uplink.queue_len", lambda c: c.update(uplink={"queue_len": 10 ** 12})),
        ("uplink.ack_window", lambda c: c.update(uplink={"ack_window": 0})),
        ("uplink.replay_rate", lambda c: c.update(uplink={"replay_rate": 0})),
        ("uplink.ack_timeout", lambda c: c.update(uplink={"ack_timeout": "0s"})),
        ("devices", lambda c: c.update(devices=c["devices"] * 11)),
        ("devices", lambda c: c.update(devices=[])),
        ("params.kp", lambda c: c.update(params={"kp": 1e300})),
        ("params.deadband_w", lambda c: c.update(params={"deadband_w": -50})),
        ("split.mode", lambda c: c.update(split={"mode": "bogus"})),
    ]
    path = os.path.join(tmp, "site.json")
    for field, mut in muts:
        c = copy.deepcopy(base)
        mut(c)
        with open(path, "w") as fh:
            json.dump(c, fh)
        r = subprocess.run([os.path.join(h.BIN, "der-gateway"), "--config", path, "--check"],
                           capture_output=True, text=True, timeout=10)
        msg = r.stdout + r.stderr
        check(r.returncode == 1 and path in msg and field in msg,
              "%s: exit %d, %r" % (field, r.returncode, msg[-300:]))
    h.cleanup()
    print("ok: der-gateway --check refuses %d absurd configurations naming file and field"
          % len(muts))


def main():
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="test-hostile-")
    try:
        test_check_absurd()
        test_dersim_frames()
        for sub in ("rest", "grpc"):
            os.mkdir(os.path.join(tmp, sub))
        test_headend_rest(os.path.join(tmp, "rest"))
        test_headend_grpc(os.path.join(tmp, "grpc"))
        test_evil_headend()
    except h.Fail as e:
        print("FAIL: %s" % e)
        return 1
    finally:
        h.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    print("test_hostile: %.1f s" % (time.monotonic() - t0))
    return 0


sys.exit(main())
