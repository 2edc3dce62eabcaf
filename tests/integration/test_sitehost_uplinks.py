#!/usr/bin/env python3
"""A multi-site der-gateway keeps its sites' setpoints apart. Sixteen sites of `der-sim serve` in
one `der-gateway --config-dir`, each with its own uplink thread and stream to
tests/integration/lib/fake_headend.py, which then sends every site its own setpoint 1,000 times
at once (the stand-in's test-only "repeat"), so the sixteen uplink threads parse at the same
time. Each site must see only its own setpoint: no "unknown site" rejection, no undecodable
message. (The uplink once parsed into one static buffer shared by every uplink thread of the
process: with 1,000 sites about 1 % of a group dispatch went to the wrong site.) A few
seconds."""
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from dersim import DerSim, Fail, ROOT, BUILD, check  # noqa: E402

GATEWAY = os.path.join(ROOT, BUILD, "bin", "der-gateway")
FAKE = os.path.join(ROOT, "tests", "integration", "lib", "fake_headend.py")
REPEAT = 1000


def get(http, path):
    with urllib.request.urlopen("http://%s%s" % (http, path), timeout=5) as r:
        return json.loads(r.read())


def post(http, body):
    rq = urllib.request.Request("http://%s/dispatch" % http, data=json.dumps(body).encode(),
                                headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(rq, timeout=10) as r:
        return json.loads(r.read())


def main():
    with DerSim("scenarios/fleet-demo.json", "--set", "sites[0].replicas=16") as sim:
        tmp = sim.tmp.name
        sites = sorted(f[:-5] for f in os.listdir(sim.config_dir) if f.endswith(".json"))
        he_out = open(os.path.join(tmp, "headend.out"), "w+")
        he = subprocess.Popen(["/usr/bin/python3", FAKE, "--grpc-listen", "127.0.0.1:0",
                               "--http-listen", "127.0.0.1:0"], stdout=he_out,
                              stderr=subprocess.DEVNULL)
        gw = None
        log = os.path.join(tmp, "gateway.log")
        try:
            end = time.monotonic() + 15
            line = ""
            while time.monotonic() < end and "ready" not in line:
                he_out.seek(0)
                line = he_out.read()
                time.sleep(0.05)
            m = re.search(r"grpc=(\S+) http=(\S+) ready", line)
            check(m, "fake_headend printed no ready line")
            grpc, http = m.group(1), m.group(2)
            with open(log, "w") as errf:
                gw = subprocess.Popen([GATEWAY, "--config-dir", sim.config_dir, "--headend", grpc],
                                      stdout=subprocess.DEVNULL, stderr=errf)
            end = time.monotonic() + 15
            while time.monotonic() < end:
                up = [a for a in get(http, "/agents") if a.get("connected")]
                if len({a.get("site_id") for a in up}) == len(sites):
                    break
                time.sleep(0.1)
            check(time.monotonic() < end, "every site registered: %s" % get(http, "/agents"))
            # one POST after the other (each only queues its 1,000 messages): the streams
            # then drain at the same time
            ids = {s: post(http, {"site_id": s, "mw": -0.001, "ttl_s": 60,
                                  "repeat": REPEAT})["setpoint_id"] for s in sites}
            # every site answers its own setpoint (APPLIED) and the repeats drain
            end = time.monotonic() + 15
            while time.monotonic() < end:
                if all(get(http, "/dispatch/" + ids[s]).get("state") == "APPLIED" for s in sites):
                    break
                time.sleep(0.2)
            time.sleep(1)
            gw.send_signal(signal.SIGTERM)
            check(gw.wait(timeout=10) == 0, "der-gateway exits 0 on SIGTERM")
            text = open(log).read()
            wrong = re.findall(r"event=setpoint_rejected [^\n]*", text)
            bad = re.findall(r"event=bad_message [^\n]*", text)
            seen = re.findall(r"event=setpoint setpoint_id=(\S+) target=site:(\S+) [^\n]* "
                              r"site=(\S+)", text)
            crossed = [x for x in seen if x[1] != x[2] or ids.get(x[2]) != x[0]]
            print("%d sites, %d setpoints x %d: %d setpoint lines, %d crossed, %d rejected, "
                  "%d undecodable" % (len(sites), len(ids), REPEAT, len(seen), len(crossed),
                                      len(wrong), len(bad)))
            check(not crossed and not wrong and not bad,
                  "a site saw another's setpoint: %s" % (crossed + wrong + bad)[:5])
            for s in sites:
                st = get(http, "/dispatch/" + ids[s]).get("state")
                check(st == "APPLIED", "%s: its setpoint %s is %s" % (s, ids[s], st))
        except Fail:
            print(open(log).read()[-3000:] if os.path.exists(log) else "")
            raise
        finally:
            for p in (gw, he):
                if p and p.poll() is None:
                    p.kill()
                    p.wait()
            he_out.close()
    print("ok: a multi-site gateway keeps its sites' setpoints apart")


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print("FAIL: %s" % e)
        sys.exit(1)
