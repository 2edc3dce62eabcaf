#!/usr/bin/python3
"""der-headend survives what the field and an attacker send it (issue: a routine reconnect
crashed the control plane). Each case failed before its fix:
- 5,000 streams opened at once and cancelled (the completion-queue drain handled an event
  twice and freed a stream with a batch in flight: "pure virtual method called");
- SIGTERM with 600 streams open, STRESS_RUNS times in a row (default 50), every exit 0;
- 5,000 anonymous streams that never Register: a gateway still registers at once, /healthz
  answers, and the anonymous ones are closed (per-address allowance, register deadline);
  with 2,000 idle REST connections besides, a real der-gateway still registers;
- telemetry stamped at INT64_MAX is stored but never becomes the asset's latest sample."""

import asyncio
import os
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_headend_peer import Gateway, Headend, check, grpc, pb, pbg, wait_for  # noqa: E402

RUNS = int(os.environ.get("STRESS_RUNS", "50"))


PER_CONN = 90  # under the headend's max-streams-per-connection (100)


async def connect_many(port, n):
    """n Connect streams, PER_CONN per HTTP/2 connection (each channel its own connection),
    all open when this returns. Returns (channels, calls)."""
    chans = [grpc.aio.insecure_channel("127.0.0.1:%d" % port,
                                       options=[("grpc.use_local_subchannel_pool", 1)])
             for _ in range((n + PER_CONN - 1) // PER_CONN)]
    calls = [pbg.HeadendStub(chans[i // PER_CONN]).Connect() for i in range(n)]
    res = await asyncio.wait_for(
        asyncio.gather(*[c.wait_for_connection() for c in calls], return_exceptions=True), 60)
    bad = [r for r in res if r is not None]
    if bad:
        print("connect_many: %d of %d failed: %s" % (len(bad), n, str(bad[0])[:300]))
    return chans, calls


async def close_all(chans, calls):
    for c in calls:
        c.cancel()
    for ch in chans:
        await ch.close()


async def open_streams(port, n, then):
    """n Connect streams; then 'cancel' them all or hold them for `then` s."""
    chans, calls = await connect_many(port, n)
    if then == "cancel":
        for c in calls:
            c.cancel()
        await asyncio.sleep(0.5)
    else:
        await asyncio.sleep(then)
    await close_all(chans, calls)


async def test_cancel_flood(tmp):
    # the per-address allowance raised so that all 5,000 are open at once, as in the crash
    he = Headend(tmp, args=["--max-pending-per-peer", "10000"])
    try:
        t0 = time.time()
        await open_streams(he.grpc_port, 5000, "cancel")
        await asyncio.sleep(0.5)
        check(he.p.poll() is None, "der-headend died (exit %r) after 5,000 cancelled streams:\n%s"
              % (he.p.returncode, he.logtext()[-2000:]))
        st, body = he.http("GET", "/healthz")
        check(st == 200, "/healthz %r" % st)
        rc = he.stop()
        check(rc == 0, "exit %r after the flood" % rc)
        print("ok: 5,000 streams opened and cancelled in %.1f s; headend alive, exit 0"
              % (time.time() - t0))
    finally:
        he.stop(signal.SIGKILL)


async def open_and_term(he, n):
    chans, calls = await connect_many(he.grpc_port, n)
    for _ in range(100):  # the client may see a stream up before the headend counted it
        streams = metric(he, "der_headend_streams")
        if streams is not None and streams >= n:
            break
        await asyncio.sleep(0.05)
    he.p.send_signal(signal.SIGTERM)
    for _ in range(200):
        if he.p.poll() is not None:
            break
        await asyncio.sleep(0.05)
    await close_all(chans, calls)
    return streams


async def test_sigterm_with_streams(tmp):
    bad = []
    t0 = time.time()
    for i in range(RUNS):
        d = tempfile.mkdtemp(dir=tmp)
        he = Headend(d, args=["--shutdown-grace", "100ms", "--max-pending-per-peer", "1000"])
        try:
            streams = await open_and_term(he, 600)
            check(streams is not None and streams >= 600,
                  "only %r streams were open at the SIGTERM" % streams)
            try:
                rc = he.p.wait(10)
            except Exception:
                rc = None
            if rc != 0:
                bad.append((i, rc, he.logtext()[-600:]))
        finally:
            he.stop(signal.SIGKILL)
    check(not bad, "%d of %d SIGTERMs with 600 streams did not exit 0: first %r"
          % (len(bad), RUNS, bad[:1]))
    print("ok: %d consecutive SIGTERMs with 600 streams open all exit 0 (%.0f s)"
          % (RUNS, time.time() - t0))


def metric(he, name):
    st, text = he.http("GET", "/metrics")
    for line in str(text).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


async def test_anonymous_flood(tmp):
    d = tempfile.mkdtemp(dir=tmp)
    he = Headend(d, args=["--register-timeout", "1500ms"])
    try:
        chans, calls = await connect_many(he.grpc_port, 5000)
        t0 = time.time()
        st, _ = he.http("GET", "/healthz")
        hz = time.time() - t0
        # a hub blocked by the flood would answer after the register deadline (1.5 s) or never;
        # 1 s leaves room for a loaded 2-core CI machine (120 ms seen) without hiding that
        check(st == 200 and hz < 1.0, "/healthz %r in %.0f ms under the flood" % (st, hz * 1000))
        t0 = time.time()
        gw = Gateway(he.grpc_port)
        rr = await asyncio.get_running_loop().run_in_executor(
            None, gw.register, "gw-a", "site-a", ["a-bat"])
        reg = time.time() - t0
        check(list(rr.accepted) == ["a-bat"], "gateway refused under the flood: %r" % (rr,))
        check(reg < 2.0, "registration took %.2f s under the flood" % reg)
        await asyncio.sleep(2)
        await close_all(chans, calls)
        closed = wait_for(lambda: (metric(he, "der_headend_register_timeouts_total") or 0) +
                          (metric(he, "der_headend_peer_evictions_total") or 0) >= 4900, 10)
        check(closed, "anonymous streams not closed: timeouts %r evictions %r" %
              (metric(he, "der_headend_register_timeouts_total"),
               metric(he, "der_headend_peer_evictions_total")))
        ag = he.agents()
        check(ag["a-bat"]["connected"], "the gateway lost its stream: %r" % ag["a-bat"])
        print("ok: 5,000 anonymous streams: /healthz in %.1f ms, a gateway registered in %.0f ms, "
              "%d evicted and %d timed out" %
              (hz * 1000, reg * 1000, metric(he, "der_headend_peer_evictions_total"),
               metric(he, "der_headend_register_timeouts_total")))

        # far-future telemetry is kept but never the latest
        gw.telemetry("a-bat", 5.0, 1)
        check(wait_for(lambda: he.http("GET", "/telemetry/a-bat")[0] == 200, 3), "no telemetry")
        gw.send(telemetry=pb.Telemetry(asset_id="a-bat", ts_ms=2**63 - 1, telemetry_seq=2,
                                       power_w=9e9, online=True))
        gw.telemetry("a-bat", 6.0, 3)
        check(wait_for(lambda: he.http("GET", "/telemetry/a-bat")[1].get("power_w") == 6.0, 3),
              "latest %r" % (he.http("GET", "/telemetry/a-bat")[1],))
        check(metric(he, "der_headend_telemetry_future_total") == 1, "future not counted")
        check("event=telemetry_future" in he.logtext(), "future sample not logged")
        gw.close()
        print("ok: a sample stamped INT64_MAX is stored and counted, never the latest")
    finally:
        he.stop(signal.SIGKILL)


def idle_rest(port, n, src="127.0.0.2"):
    """n connections to the REST port from another loopback address, each a half-sent request
    (the attacker of test_rest_limits.py); refused ones are fine, that is the limit working."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 2000:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 4000), hard))
    socks = []
    for _ in range(n):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.bind((src, 0))
            c.connect_ex(("127.0.0.1", port))
        except OSError:
            c.close()
            continue
        socks.append(c)
    time.sleep(0.2)
    for c in socks:
        try:
            c.send(b"GET /agents HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            pass
    return socks


async def test_real_gateway_under_flood(tmp):
    """The acceptance case: 5,000 anonymous gRPC streams and 2,000 idle REST connections at
    once; a real der-gateway (against der-sim serve) still registers and /healthz answers
    within 100 ms."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
    from dersim import DerSim
    from test_e2e_headend import GATEWAY, SCENARIO, Proc, gateway_config
    d = tempfile.mkdtemp(dir=tmp)
    with DerSim(SCENARIO) as sim:
        cfg = sim.config("fleet")
        assets = [{"asset_id": x["asset_id"], "type": x["type"]} for x in cfg["devices"]]
        inv = {"sites": [{"site_id": "fleet", "gateways": ["gw-fleet"], "assets": assets}]}
        he = Headend(d, inventory=inv, args=["--register-timeout", "3s"])
        socks = []
        gw = None
        try:
            chans, calls = await connect_many(he.grpc_port, 5000)
            socks = idle_rest(he.http_port, 2000)
            t0 = time.time()
            st, _ = he.http("GET", "/healthz")
            hz = time.time() - t0
            check(st == 200 and hz < 0.1, "/healthz %r in %.0f ms" % (st, hz * 1000))
            gcfg = gateway_config(sim, d, "fleet", "null")
            t0 = time.time()
            gw = Proc([GATEWAY, "-c", gcfg, "--headend", "127.0.0.1:%d" % he.grpc_port],
                      "gateway", d)
            for _ in range(100):
                if "event=registered" in gw.log():
                    break
                await asyncio.sleep(0.05)
            reg = time.time() - t0
            check("event=registered" in gw.log(), "der-gateway did not register under the "
                  "flood: %s" % gw.log()[-800:])
            t0 = time.time()
            st, _ = he.http("GET", "/healthz")
            hz2 = time.time() - t0
            check(st == 200 and hz2 < 0.1, "/healthz %r in %.0f ms" % (st, hz2 * 1000))
            await close_all(chans, calls)
            print("ok: 5,000 anonymous streams + 2,000 idle REST connections: der-gateway "
                  "registered in %.0f ms, /healthz in %.1f / %.1f ms" %
                  (reg * 1000, hz * 1000, hz2 * 1000))
        finally:
            for c in socks:
                c.close()
            if gw:
                gw.stop(signal.SIGKILL)
            he.stop(signal.SIGKILL)


async def run_all():
    # One event loop for every grpc.aio channel: aio channels do not survive a second loop.
    with tempfile.TemporaryDirectory() as tmp:
        await test_cancel_flood(tmp)
        await test_anonymous_flood(tmp)
        await test_real_gateway_under_flood(tmp)
        await test_sigterm_with_streams(tmp)


def main():
    asyncio.run(run_all())
    print("PASS")


if __name__ == "__main__":
    main()
