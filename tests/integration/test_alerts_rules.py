#!/usr/bin/python3
"""The alert rules a real gateway cannot be made to break on demand, raised and cleared end to
end (docs/operations.md, "Alerts"): der-headend with small thresholds (--alert-eval 100ms,
--alert-stale-after 1s, --alert-lag-max 1s, --alert-soc-reserve-pct 20), a webhook receiver
run by this test, and a gateway written with python3-grpcio (test_headend_peer.py) whose
timestamps, SoC, states and silences the test chooses:
- gateway_stale: the gateway falls silent longer than the threshold (its stream open), then
  sends a heartbeat; the webhook receives the raise and the clear, /metrics
  der_headend_alerts_active goes 1 then 0 and der_headend_alerts_raised_total counts it;
- telemetry_lag: a sample sent 1.3 s after its timestamp, then one on time;
- soc_low: SoC 10 % under a 20 % reserve; 21 % keeps it (the clear needs reserve + 2 points),
  25 % clears it;
- asset_fault: a sample in operating state FAULT, then one in IDLE;
- dispatch_failed: a dispatch the gateway acks FAILED, cleared by an operator's ack.
gateway_offline (the gateway killed and back), dispatch_failed on EXPIRED and soc_low raised
from der-sim's batteries: test_alerts.py; asset_fault and modbus_errors from der-sim serve's
device and wire faults with the real der-gateway: test_alerts_device.py."""

import os
import re
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_headend_peer import Headend, Gateway, Fail, check, wait_for, pb  # noqa: E402
from test_alerts import Receiver  # noqa: E402


class Peer:
    """The grpcio gateway of site-a with a heartbeat every 0.2 s that the test can pause (the
    gateway falls silent, its stream still open). One lock for every send: seq stays in order."""

    def __init__(self, port):
        self.gw = Gateway(port)
        self.lock = threading.Lock()
        self.beating = threading.Event()
        self.stop = threading.Event()
        with self.lock:
            rr = self.gw.register("gw-a", "site-a", ["a-bat", "a-pv"], primary="a-bat")
        check(sorted(rr.accepted) == ["a-bat", "a-pv"], "register: %r" % (rr,))
        self.tseq = 0
        self.beating.set()
        self.thread = threading.Thread(target=self._beat, daemon=True)
        self.thread.start()

    def _beat(self):
        while not self.stop.wait(0.2):
            if self.beating.is_set():
                with self.lock:
                    self.gw.send(heartbeat=pb.Heartbeat(uptime_ms=1000))

    def telemetry(self, late_ms=0, **kw):
        """A battery sample stamped late_ms before now."""
        with self.lock:
            self.tseq += 1
            self.gw.send(telemetry=pb.Telemetry(
                asset_id="a-bat", ts_ms=int(time.time() * 1000) - late_ms,
                telemetry_seq=self.tseq, power_w=0.0, online=True, **kw))

    def ack(self, setpoint_id, state, detail=""):
        with self.lock:
            self.gw.ack(setpoint_id, state, detail=detail)

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.gw.close()


def alerts(he, query):
    code, r = he.http("GET", "/alerts" + query)
    check(code == 200, "GET /alerts%s: %s %s" % (query, code, r))
    return r["alerts"]


def active(he, rule):
    return alerts(he, "?state=active&rule=" + rule)


def series(he, name, rule):
    code, text = he.http("GET", "/metrics")
    check(code == 200, "GET /metrics: %s" % code)
    m = re.search(r'^%s\{rule="%s"\} (\d+)$' % (name, rule), text, re.M)
    check(m, "no %s{rule=%s} in /metrics" % (name, rule))
    return int(m.group(1))


def raise_and_clear(he, rule, subject, make, unmake, timeout=4):
    """make() until rule is active for subject, unmake() until it is cleared; returns the alert."""
    make()
    got = wait_for(lambda: active(he, rule), timeout)
    check(got and got[0]["subject"] == subject, "%s not raised for %s: %s"
          % (rule, subject, alerts(he, "?state=all")))
    unmake()
    check(wait_for(lambda: not active(he, rule), timeout), "%s not cleared: %s"
          % (rule, active(he, rule)))
    hist = alerts(he, "?state=cleared&rule=" + rule)
    check(hist and hist[0]["id"] == got[0]["id"] and hist[0]["cleared_ms"] >= got[0]["raised_ms"],
          "%s history: %s" % (rule, hist))
    return got[0]


def main():
    tmp = tempfile.mkdtemp(prefix="derloop-alert-rules-")
    rx = Receiver()
    t0 = time.monotonic()
    he = peer = None
    try:
        he = Headend(tmp, args=[
            "--alert-eval", "100ms", "--alert-stale-after", "1s", "--alert-lag-max", "1s",
            "--alert-soc-reserve-pct", "20", "--alert-offline-after", "0",
            "--alert-webhook", "http://127.0.0.1:%d/hook" % rx.port,
            "--alert-webhook-timeout", "1s"], db=":memory:")
        peer = Peer(he.grpc_port)
        peer.telemetry(storage=pb.StorageDetails(soc=0.5), state="IDLE")
        check(wait_for(lambda: he.agents()["a-bat"]["connected"], 5), "site-a not connected")
        quiet = alerts(he, "?state=all")
        check(not quiet, "alerts before any condition: %s" % quiet)

        # gateway_stale: silent (stream open) for longer than 1 s, then a heartbeat
        check(series(he, "der_headend_alerts_active", "gateway_stale") == 0, "metrics before")
        seen = {}

        def silent():
            peer.beating.clear()

        def speaks():
            seen["active"] = series(he, "der_headend_alerts_active", "gateway_stale")
            peer.beating.set()

        t = time.monotonic()
        a = raise_and_clear(he, "gateway_stale", "site-a", silent, speaks)
        check(a["value"] >= 1000, "stale value %s ms" % a["value"])
        check(seen["active"] == 1, "der_headend_alerts_active{gateway_stale} while raised: %s"
              % seen["active"])
        check(series(he, "der_headend_alerts_active", "gateway_stale") == 0 and
              series(he, "der_headend_alerts_raised_total", "gateway_stale") == 1,
              "metrics after the clear")
        check(wait_for(lambda: rx.taken("raised", "gateway_stale") and
                       rx.taken("cleared", "gateway_stale"), 5),
              "webhook: %s" % rx.posts)
        r, c = rx.taken("raised", "gateway_stale")[0], rx.taken("cleared", "gateway_stale")[0]
        check(r["alert"]["id"] == c["alert"]["id"] == a["id"] and
              c["alert"]["state"] == "cleared", "webhook bodies: %s %s" % (r, c))
        print("ok: gateway_stale raised after %.0f ms of silence, cleared by a heartbeat "
              "(%.1f s); webhook raised+cleared; alerts_active 1 -> 0, raised_total 1"
              % (a["value"], time.monotonic() - t))

        # telemetry_lag: a sample sent 1.3 s after its timestamp (still the newest one: an
        # older sample would be history, never the latest), then one on time
        def late():
            stamp = time.time()
            time.sleep(1.3)
            peer.telemetry(late_ms=int((time.time() - stamp) * 1000))

        a = raise_and_clear(he, "telemetry_lag", "a-bat", late, lambda: peer.telemetry())
        check(a["value"] >= 1300, "lag value %s" % a["value"])
        print("ok: telemetry_lag raised by a sample %.0f ms late, cleared by a timely one"
              % a["value"])

        # soc_low: 10 % under a 20 % reserve; 21 % holds it (hysteresis), 25 % clears it
        def hysteresis_then_clear():
            peer.telemetry(storage=pb.StorageDetails(soc=0.21))
            check(wait_for(lambda: he.http("GET", "/telemetry/a-bat")[1].get("telemetry_seq")
                           == peer.tseq, 3), "the 21 % sample did not arrive")
            time.sleep(0.3)  # three evaluations
            check(active(he, "soc_low"), "soc_low cleared at 21 % (the clear is at 22 %)")
            peer.telemetry(storage=pb.StorageDetails(soc=0.25))

        a = raise_and_clear(he, "soc_low", "a-bat",
                            lambda: peer.telemetry(storage=pb.StorageDetails(soc=0.10)),
                            hysteresis_then_clear)
        check(abs(a["value"] - 0.10) < 1e-9, "soc value %s" % a["value"])
        print("ok: soc_low raised at SoC 10 %, still active at 21 %, cleared at 25 %")

        # asset_fault: operating state FAULT, then IDLE
        raise_and_clear(he, "asset_fault", "a-bat", lambda: peer.telemetry(state="FAULT"),
                        lambda: peer.telemetry(state="IDLE"))
        print("ok: asset_fault raised by state FAULT, cleared by IDLE")

        # dispatch_failed: the gateway acks FAILED; an operator's ack clears it
        code, d = he.http("POST", "/dispatch", {"site_id": "site-a", "mw": 0.5, "ttl_s": 60})
        check(code == 202, "dispatch: %s %s" % (code, d))
        sp = d["setpoint_id"]

        def ack_alert():
            code, r = he.http("POST", "/alerts/%d/ack" % active(he, "dispatch_failed")[0]["id"],
                              {})
            check(code == 200 and r["acked_by"], "ack: %s %s" % (code, r))

        a = raise_and_clear(he, "dispatch_failed", sp,
                            lambda: peer.ack(sp, pb.SetpointAck.FAILED, "test: inverter trip"),
                            ack_alert)
        print("ok: dispatch_failed raised by a FAILED ack (%s), cleared by an operator's ack"
              % a["detail"])

        # (gateway_stale left out: a heartbeat thread starved for 1 s on a loaded machine
        # would raise it again, rightly)
        for rule in ("telemetry_lag", "soc_low", "asset_fault", "dispatch_failed"):
            check(series(he, "der_headend_alerts_raised_total", rule) == 1 and
                  series(he, "der_headend_alerts_active", rule) == 0, "metrics of %s" % rule)
        check(wait_for(lambda: not alerts(he, "?state=active"), 3),
              "alerts still active: %s" % alerts(he, "?state=active"))
        peer.close()
        peer = None
        check(he.stop() == 0, "headend exit")
        print("all alert rule tests passed in %.1f s" % (time.monotonic() - t0))
        return 0
    except Fail as e:
        print("FAIL: %s" % e)
        if he:
            print("---- headend log tail:\n%s" % he.logtext()[-3000:])
        return 1
    finally:
        if peer:
            peer.close()
        if he:
            he.stop()
        rx.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
