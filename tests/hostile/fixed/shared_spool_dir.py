#!/usr/bin/python3
"""Hostile wave 3, finding 28: two sites of one `der-gateway --config-dir` with the same
uplink.spool_dir (a configuration copied for a new site, its site_id changed) shared
estop.json and desired-config.json: an emergency stop persisted for site-1 engaged site-2 at
start (`event=estop state=engaged id=stop-for-site-1 ... site=site-2`), and a release of either
would delete the other's stop. Now the start is refused naming the file, the directory and the
other site's file. `der-sim serve` of two sites for the configurations; about 2 s."""
import json
import os
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration", "lib"))
from dersim import BUILD, DerSim, ROOT  # noqa: E402

GATEWAY = os.path.join(ROOT, BUILD, "bin", "der-gateway")


def main():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    nowhere = s.getsockname()[1]
    s.close()
    with DerSim("scenarios/fleet-demo.json", "--set", "sites[0].replicas=2") as sim:
        spool = os.path.join(sim.tmp.name, "shared-spool")
        os.makedirs(spool)
        files = sorted(f for f in os.listdir(sim.config_dir) if f.endswith(".json"))
        for i, f in enumerate(files):
            p = os.path.join(sim.config_dir, f)
            with open(p) as fh:
                c = json.load(fh)
            c["uplink"] = {"target": "127.0.0.1:%d" % nowhere,
                           "spool_dir": spool + "/" * i}  # the same directory, spelt apart
            with open(p, "w") as fh:
                json.dump(c, fh)
        with open(os.path.join(spool, "estop.json"), "w") as fh:
            json.dump({"active": True, "id": "stop-for-site-1", "reason": "site-1 only",
                       "by": "headend"}, fh)
        p = subprocess.run(["timeout", "3", GATEWAY, "--config-dir", sim.config_dir],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        err = p.stderr
        if p.returncode != 1 or "uplink.spool_dir" not in err or files[0] not in err:
            engaged = [line for line in err.splitlines() if "event=estop" in line]
            print("FAIL: exit %d; two sites ran on one spool directory: %s" %
                  (p.returncode, engaged or err[-500:]))
            return 1
        print("ok: a spool directory shared by two sites is refused: %s" % err.strip()[-160:])
        return 0


if __name__ == "__main__":
    sys.exit(main())
