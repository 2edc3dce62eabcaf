#!/usr/bin/env python3
"""der-gateway's /metrics (--metrics-listen, gateway/uplink/gwmetrics.c) on a real gateway:
`der-sim serve` of two fleet sites, one `der-gateway --config-dir` for both with an uplink to a
port where no headend listens, and the metrics on port 0 (the port read from the
event=metrics_listen line). Two scrapes a second and a half apart: every series family is
there with a site label for each site, the cycle count and the Modbus requests move, devices
are online with closed breakers, the uplink is shown down with its queue; other paths answer
404. Then a bad --metrics-listen is refused with a message naming it. A few seconds."""
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from dersim import DerSim, Fail, ROOT, BUILD, check  # noqa: E402

GATEWAY = os.path.join(ROOT, BUILD, "bin", "der-gateway")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port  # nothing listens there: the uplink keeps trying


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        check(r.status == 200, "GET /metrics: %d" % r.status)
        check(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"),
              "content type %s" % r.headers["Content-Type"])
        text = r.read().decode()
    series = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            series[name] = float(value)
    return text, series


def total(series, prefix, site):
    return sum(v for k, v in series.items()
               if k.startswith(prefix + "{") and 'site="%s"' % site in k)


def main():
    with DerSim("scenarios/fleet-demo.json", "--set", "sites[0].replicas=2") as sim:
        sites = sorted(f[:-5] for f in os.listdir(sim.config_dir) if f.endswith(".json"))
        check(len(sites) == 2, "two site configurations, got %s" % sites)
        log = os.path.join(sim.tmp.name, "gateway.log")
        with open(log, "w") as errf:
            gw = subprocess.Popen([GATEWAY, "--config-dir", sim.config_dir, "--headend",
                                   "127.0.0.1:%d" % free_port(), "--metrics-listen",
                                   "127.0.0.1:0"], stdout=subprocess.DEVNULL, stderr=errf)
        try:
            port = None
            end = time.monotonic() + 10
            while port is None and time.monotonic() < end and gw.poll() is None:
                m = re.search(r"event=metrics_listen addr=127\.0\.0\.1:(\d+)", open(log).read())
                port = int(m.group(1)) if m else None
                time.sleep(0.05)
            check(port, "no event=metrics_listen line: %s" % open(log).read()[-2000:])
            time.sleep(1.5)
            text, a = scrape(port)
            time.sleep(1.5)
            _, b = scrape(port)
            for fam in ("der_gateway_build_info", "der_gateway_cycle_seconds",
                        "der_gateway_late_cycles_total", "der_gateway_modbus_requests_total",
                        "der_gateway_modbus_timeouts_total", "der_gateway_breaker_state",
                        "der_gateway_device_online", "der_gateway_uplink_connected",
                        "der_gateway_uplink_queue_depth", "der_gateway_spool_depth"):
                check("# TYPE %s " % fam in text, "family %s missing" % fam)
            # the text format: every sample under a family declared before it, no series twice
            types, names = {}, set()
            for line in text.splitlines():
                if line.startswith("# TYPE "):
                    _, _, fam, typ = line.split()
                    check(fam not in types, "family %s declared twice" % fam)
                    types[fam] = typ
                elif line and not line.startswith("#"):
                    name = line.rsplit(" ", 1)[0]
                    base = name.split("{", 1)[0]
                    fam = re.sub(r"_(bucket|sum|count)$", "", base) \
                        if types.get(re.sub(r"_(bucket|sum|count)$", "", base)) == "histogram" else base
                    check(fam in types, "sample %s before its # TYPE" % name)
                    check(name not in names, "series %s twice" % name)
                    names.add(name)
            check(a.get("der_gateway_sites") == 2, "der_gateway_sites = %s" % a.get("der_gateway_sites"))
            for s in sites:
                c0 = a.get('der_gateway_cycle_seconds_count{site="%s"}' % s, 0)
                c1 = b.get('der_gateway_cycle_seconds_count{site="%s"}' % s, 0)
                r0 = total(a, "der_gateway_modbus_requests_total", s)
                r1 = total(b, "der_gateway_modbus_requests_total", s)
                inf = b.get('der_gateway_cycle_seconds_bucket{site="%s",le="+Inf"}' % s)
                online = [v for k, v in b.items()
                          if k.startswith("der_gateway_device_online{") and 'site="%s"' % s in k]
                brk = [v for k, v in b.items()
                       if k.startswith("der_gateway_breaker_state{") and 'site="%s"' % s in k]
                up = b.get('der_gateway_uplink_connected{site="%s"}' % s)
                print("%s: cycles %d -> %d, modbus requests %d -> %d, devices online %d/%d, "
                      "breakers %s, uplink connected %s" % (s, c0, c1, r0, r1, sum(online),
                                                            len(online), brk, up))
                check(c1 > c0 >= 1, "%s: the cycle count moves (%s -> %s)" % (s, c0, c1))
                check(inf == c1, "%s: the +Inf bucket is the count" % s)
                check(r1 > r0 > 0, "%s: the Modbus requests move (%s -> %s)" % (s, r0, r1))
                check(online and all(v == 1 for v in online), "%s: devices online" % s)
                check(brk and all(v == 0 for v in brk), "%s: breakers closed" % s)
                check(up == 0, "%s: no headend listens, the uplink is down (%s)" % (s, up))
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/other" % port, timeout=5)
                check(False, "GET /other must be 404")
            except urllib.error.HTTPError as e:
                check(e.code == 404, "GET /other: %d" % e.code)
            gw.send_signal(signal.SIGTERM)
            check(gw.wait(timeout=10) == 0, "der-gateway exits 0 on SIGTERM")
            bad = subprocess.run([GATEWAY, "--config-dir", sim.config_dir, "--metrics-listen",
                                  "localhost:x"], capture_output=True, text=True, timeout=20)
            print("bad address: exit %d: %s" % (bad.returncode, bad.stderr.strip()))
            check(bad.returncode == 1 and "--metrics-listen" in bad.stderr,
                  "a bad --metrics-listen is refused with its name")
        except Fail:
            print(open(log).read()[-3000:])
            raise
        finally:
            if gw.poll() is None:
                gw.kill()
                gw.wait()
    print("ok: gateway metrics")


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print("FAIL: %s" % e)
        sys.exit(1)
