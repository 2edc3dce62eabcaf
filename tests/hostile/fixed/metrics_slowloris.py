#!/usr/bin/python3
"""Hostile (wave 3): 16 clients on another host (127.0.0.2) that open a connection to der-gateway's --metrics-listen and
send the request one header byte every 2 s (slowloris). Exits 1 while an honest scrape made
during the attack gets no answer within 5 s; 0 once it does. Also prints the gateway's late
cycles and cycle count before and after (the control loop must not lag). Loopback only."""
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration", "lib"))
from dersim import DerSim, ROOT, BUILD, check  # noqa: E402

GATEWAY = os.path.join(ROOT, BUILD, "bin", "der-gateway")
CONNS = int(os.environ.get("CONNS", "16"))
HOLD = float(os.environ.get("HOLD", "4"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def scrape(port, timeout=5):
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=timeout) as r:
            text = r.read().decode()
        return time.monotonic() - t0, text
    except Exception as e:  # timeout, reset
        return time.monotonic() - t0, "error: %s" % e


def figure(text, name):
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith(name + "{"))


def main():
    with DerSim("scenarios/fleet-demo.json", "--set", "sites[0].replicas=2") as sim:
        log = os.path.join(sim.tmp.name, "gateway.log")
        with open(log, "w") as errf:
            gw = subprocess.Popen([GATEWAY, "--config-dir", sim.config_dir, "--headend",
                                   "127.0.0.1:%d" % free_port(), "--metrics-listen",
                                   "127.0.0.1:0"], stdout=subprocess.DEVNULL, stderr=errf)
        socks = []
        stop = threading.Event()
        try:
            port = None
            end = time.monotonic() + 10
            while port is None and time.monotonic() < end:
                m = re.search(r"event=metrics_listen addr=127\.0\.0\.1:(\d+)", open(log).read())
                port = int(m.group(1)) if m else None
                time.sleep(0.05)
            check(port, "no metrics_listen line")
            time.sleep(1.2)
            _, before = scrape(port)

            def trickle():
                req = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-a: " + b"a" * 1000
                for s in list(socks):
                    try:
                        s.sendall(req[:1])
                    except OSError:
                        pass
                i = 1
                while not stop.wait(2.0):
                    for s in list(socks):
                        try:
                            s.sendall(req[i:i + 1])
                        except OSError:
                            pass
                    i += 1
            for _ in range(CONNS):
                # another host than the scraper's (127.0.0.2, still loopback)
                s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                             source_address=("127.0.0.2", 0))
                socks.append(s)
            th = threading.Thread(target=trickle)
            th.start()
            worst, fails = 0.0, 0
            end = time.monotonic() + HOLD
            while time.monotonic() < end:
                dt, text = scrape(port)
                worst = max(worst, dt)
                fails += text.startswith("error")
                time.sleep(0.5)
            _, during = scrape(port)
            stop.set()
            th.join()
            print("slowloris %d connections for %.0f s: honest scrapes failed %d, slowest %.1f s; "
                  "late cycles %g -> %g, cycles %g -> %g" % (
                      CONNS, HOLD, fails, worst, figure(before, "der_gateway_late_cycles_total"),
                      figure(during, "der_gateway_late_cycles_total"),
                      figure(before, "der_gateway_cycle_seconds_count"),
                      figure(during, "der_gateway_cycle_seconds_count")))
            check(fails == 0, "%d honest scrapes got no answer while %d slow clients held the "
                  "metrics listener" % (fails, CONNS))
            print("ok: a slowloris does not lock Prometheus out")
            return 0
        finally:
            stop.set()
            for s in socks:
                s.close()
            gw.terminate()
            gw.wait(10)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:
        print("FAIL: %s" % e)
        sys.exit(1)
