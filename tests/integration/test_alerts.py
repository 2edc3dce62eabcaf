#!/usr/bin/python3
"""Alerts end to end on loopback (docs/operations.md, "Alerts"): `der-sim serve`
(scenarios/fleet-site.json), der-gateway, der-headend with short thresholds and
--alert-webhook pointing at a small HTTP server run by this test.
- the gateway killed: gateway_offline is raised after alert-offline-after-s, the webhook
  receives it although the receiver refuses the first two POSTs (503: retried with backoff),
  and /metrics counts the failures; the gateway back: the alert is cleared, the webhook says so;
- soc_low is raised for batteries under the reserve (the reserve set above their SoC);
- a dispatch that expires raises dispatch_failed, which an operator's ack clears (a second ack
  is 409); GET /alerts filters by state and rule; /metrics has the active alerts by rule.
asset_fault and modbus_errors (a device fault and a wire fault in der-sim serve): test_alerts_device.py;
gateway_stale, telemetry_lag, soc_low's clear, a FAILED dispatch: test_alerts_rules.py."""

import json
import os
import signal
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dersim import DerSim, check, wait_until  # noqa: E402
import test_e2e_headend as e2e  # noqa: E402


class Receiver:
    """The webhook's receiver: records every POST; refuses (503) the next `fail` of them."""

    def __init__(self):
        self.posts = []  # (status answered, body)
        self.fail = 0
        self.lock = threading.Lock()
        rx = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with rx.lock:
                    code = 503 if rx.fail > 0 else 200
                    rx.fail -= code == 503
                    rx.posts.append((code, json.loads(body)))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def taken(self, change, rule):
        with self.lock:
            return [b for c, b in self.posts
                    if c == 200 and b["change"] == change and b["alert"]["rule"] == rule]

    def refused(self):
        with self.lock:
            return sum(1 for c, _ in self.posts if c == 503)

    def close(self):
        self.srv.shutdown()


def alerts(he, query=""):
    code, r = he.get("/alerts" + query)
    check(code == 200, "GET /alerts%s: %s %s" % (query, code, r))
    return r["alerts"]


def metrics(he):
    with urllib.request.urlopen(he.http + "/metrics", timeout=3) as m:
        return m.read().decode()


def test_alerts(sim, tmp, rx):
    e2e.HEADEND_ARGS += ["--alert-eval", "200ms", "--alert-offline-after", "2s",
                         "--alert-soc-reserve-pct", "99", "--dispatch-ttl-min-s", "1",
                         "--alert-webhook", "http://127.0.0.1:%d/hook" % rx.port,
                         "--alert-webhook-timeout", "1s", "--alert-webhook-retries", "5"]
    he = e2e.Headend(tmp, inventory=e2e.write_inventory(sim, tmp), kind="real")
    cfgp = e2e.gateway_config(sim, tmp, "fleet", "null")
    gw = e2e.Proc([e2e.GATEWAY, "-c", cfgp, "--headend", he.grpc], "gateway", tmp)
    check(wait_until(lambda: he.connected("gw-fleet"), 8), "gateway did not register")

    # soc_low: every battery is below a 99 % reserve
    low = wait_until(lambda: len(alerts(he, "?state=active&rule=soc_low")) == 4 and
                     alerts(he, "?state=active&rule=soc_low"), 5)
    check(low and sorted(a["subject"] for a in low) == ["bat-1", "bat-2", "bat-3", "bat-4"],
          "soc_low for the four batteries: %s" % alerts(he))
    print("ok: soc_low raised for %s (SoC %s)" % ([a["subject"] for a in low],
                                                  [round(a["value"], 3) for a in low]))

    # the gateway killed: offline after 2 s; the receiver refuses the first two POSTs of it
    with rx.lock:
        rx.fail = 2
    gw.stop(signal.SIGKILL)
    t_kill = time.monotonic()
    off = wait_until(lambda: alerts(he, "?state=active&rule=gateway_offline"), 2 + 2 +
                     e2e.KEEPALIVE_S * 3)
    check(off and off[0]["subject"] == "fleet", "gateway_offline: %s" % alerts(he))
    raised_after = time.monotonic() - t_kill
    got = wait_until(lambda: rx.taken("raised", "gateway_offline"), 6)
    check(got and got[0]["alert"]["id"] == off[0]["id"], "webhook raised: %s" % rx.posts)
    check(rx.refused() == 2, "the receiver refused %d POSTs, wanted 2" % rx.refused())
    m = metrics(he)
    check('der_headend_alerts_active{rule="gateway_offline"} 1' in m and
          "der_headend_alert_webhook_failures_total 2" in m, "metrics: %s" %
          [x for x in m.splitlines() if "alert" in x and not x.startswith("#")])
    print("ok: gateway killed: gateway_offline raised after %.1f s; webhook delivered after 2 "
          "refusals (retried)" % raised_after)

    # a dispatch nobody serves expires: dispatch_failed, until acknowledged
    code, d = he.post("/dispatch", {"site_id": "fleet", "mw": 0.001, "ttl_s": 1})
    check(code == 202, "dispatch: %s %s" % (code, d))
    ev = wait_until(lambda: alerts(he, "?state=active&rule=dispatch_failed"), 4)
    check(ev and ev[0]["subject"] == d["setpoint_id"], "dispatch_failed: %s" % alerts(he))
    code, r = he.post("/alerts/%d/ack" % ev[0]["id"], {})
    check(code == 200 and r["state"] == "cleared" and r["acked_by"], "ack: %s %s" % (code, r))
    code, r = he.post("/alerts/%d/ack" % ev[0]["id"], {})
    check(code == 409, "second ack: %s %s" % (code, r))
    code, r = he.post("/alerts/99999/ack", {})
    check(code == 404, "ack of nothing: %s %s" % (code, r))
    print("ok: expired dispatch raised dispatch_failed; the ack cleared it (again: 409)")

    # the gateway back: the offline alert clears, the webhook says so
    gw2 = e2e.Proc([e2e.GATEWAY, "-c", cfgp, "--headend", he.grpc], "gateway-back", tmp)
    check(wait_until(lambda: not alerts(he, "?state=active&rule=gateway_offline"), 5),
          "gateway_offline not cleared: %s" % alerts(he))
    hist = alerts(he, "?state=cleared&rule=gateway_offline")
    check(hist and hist[0]["id"] == off[0]["id"] and hist[0]["cleared_ms"], "history: %s" % hist)
    check(wait_until(lambda: rx.taken("cleared", "gateway_offline"), 5), "webhook cleared")
    check('der_headend_alerts_active{rule="gateway_offline"} 0' in metrics(he), "metrics")
    code, r = he.get("/alerts?state=maybe")
    check(code == 400 and r["field"] == "state", "bad filter: %s %s" % (code, r))
    print("ok: gateway back: gateway_offline cleared (history, webhook, metrics)")
    gw2.stop()
    he.proc.stop()


def main():
    rx = Receiver()

    def body(tmp):
        with DerSim(e2e.SCENARIO) as sim:
            test_alerts(sim, tmp, rx)
    return e2e.run_main("alert", "derloop-alerts-", body, cleanup=(rx.close,))


if __name__ == "__main__":
    sys.exit(main())
