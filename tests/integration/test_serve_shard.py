#!/usr/bin/python3
"""der-sim serve --shard K/N and der-sim inventory --shard K/N (docs/operations.md, "Demo"):
for a 7-site fleet and N = 1, 2, 3, the shards' inventories and the sites each shard serves
(its `site=` lines, listening on port-base + fleet index) are disjoint and together the whole
fleet, by the documented rule (site i goes to shard i % N + 1); a bad K/N is refused with
exit status 2 and a message naming --shard. Each serve is stopped by SIGTERM once ready."""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
SIM = os.path.join(BUILD, "bin", "der-sim")
SCENARIO = os.path.join(ROOT, "scenarios", "fleet-demo.json")
SET = ["--set", "sites[0].replicas=7"]


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def inventory(shard=None):
    cmd = [SIM, "inventory"] + SET + (["--shard", shard] if shard else []) + [SCENARIO]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    check(p.returncode == 0, "%s: %s" % (" ".join(cmd), p.stderr.decode()))
    return [s["site_id"] for s in json.loads(p.stdout)["sites"]]


def free_base(n):
    """A port base with n free ports above it (checked, then released)."""
    for _ in range(50):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
        s.close()
        if base + n >= 65535:
            continue
        ok = True
        for i in range(n):
            t = socket.socket()
            try:
                t.bind(("127.0.0.1", base + i))
            except OSError:
                ok = False
            t.close()
        if ok:
            return base
    raise Fail("no free port range")


def serve(shard, base, tmp):
    cmd = [SIM, "serve"] + SET + ["--shard", shard, "--port-base", str(base), "--config-dir",
                                  os.path.join(tmp, shard.replace("/", "of")), "--loop",
                                  SCENARIO]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
    sites, ready = {}, None
    try:
        while ready is None:
            r, _, _ = select.select([p.stdout], [], [], 20)
            check(r, "serve --shard %s: no ready line within 20 s" % shard)
            line = p.stdout.readline().decode()
            check(line, "serve --shard %s ended early" % shard)
            if line.startswith("site="):
                f = dict(kv.split("=", 1) for kv in line.split()[:2])
                sites[f["site"]] = int(f["listen"].rsplit(":", 1)[1])
            elif line.startswith("ready"):
                ready = line.split()
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    check(p.returncode == 0, "serve --shard %s: exit status %r" % (shard, p.returncode))
    return sites, ready


def main():
    fleet = inventory()
    check(len(fleet) == 7, "fleet of 7: %r" % fleet)
    tmp = tempfile.mkdtemp(prefix="shard-")
    try:
        base = free_base(len(fleet))
        for n in (1, 2, 3):
            parts = [inventory("%d/%d" % (k, n)) for k in range(1, n + 1)]
            union = [s for p in parts for s in p]
            check(sorted(union) == sorted(fleet) and len(set(union)) == len(fleet),
                  "inventory shards of %d: %r" % (n, parts))
            for k, part in enumerate(parts, 1):
                want = [s for i, s in enumerate(fleet) if i % n == k - 1]
                check(part == want, "shard %d/%d: %r, rule says %r" % (k, n, part, want))
        print("ok: inventory --shard K/N for N = 1, 2, 3: disjoint, the whole fleet, i % N + 1")
        served = {}
        for k in (1, 2):
            sites, ready = serve("%d/2" % k, base, tmp)
            check(ready[1:] == ["sites=%d" % len(sites), "shard=%d/2" % k, "fleet=7"],
                  "ready line %r" % ready)
            check(sorted(sites) == sorted(inventory("%d/2" % k)), "served %r" % sites)
            for s, port in sites.items():
                check(port == base + fleet.index(s), "%s on port %d, want base + %d"
                      % (s, port, fleet.index(s)))
                check(s not in served, "%s served by two shards" % s)
                served[s] = k
            cfgs = sorted(os.listdir(os.path.join(tmp, "%dof2" % k)))
            check(cfgs == sorted(s + ".json" for s in sites), "configs of shard %d: %r"
                  % (k, cfgs))
        check(sorted(served) == sorted(fleet), "serve shards cover %r" % served)
        print("ok: serve --shard 1/2 and 2/2: %s, ports port-base + fleet index, configs per shard"
              % ", ".join("%s@%d" % (s, served[s]) for s in fleet))
        for bad in ("0/2", "3/2", "1/0", "x", "1/2/3"):
            p = subprocess.run([SIM, "serve", "--shard", bad, SCENARIO], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=10)
            check(p.returncode == 2 and b"--shard" in p.stderr, "--shard %s: %d %r"
                  % (bad, p.returncode, p.stderr))
        print("ok: bad --shard values refused with status 2")
    finally:
        subprocess.run(["rm", "-rf", tmp])
    print("PASS")


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print("FAIL: %s" % e)
        sys.exit(1)
