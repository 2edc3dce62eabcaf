#!/usr/bin/python3
"""A webhook host whose DNS lookup hangs (headend/webhook.c; FINDINGS.md finding 17): the
lookup (getaddrinfo, blocking) ran outside the POST's deadline, so a resolver that does not
answer held the webhook thread, and the headend's SIGTERM, for the resolver's whole timeout.
No DNS here: a small LD_PRELOAD library, built by this test with cc, makes getaddrinfo of
"stall.invalid" sleep 30 s (every other name goes to the C library).
Now: the attempt fails "cannot resolve stall.invalid: no answer within the timeout" after
--alert-webhook-timeout (1 s), and SIGTERM stops the headend at once although the lookup still
sleeps. An alert is raised by a fake agent that registers gw-1 and leaves (gateway_offline)."""

import os
import queue
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from hostile import (BIN, Proc, check, grpc, mktemp, pb, pbg, run_main,  # noqa: E402
                     wait_for, write_json)

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>
typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    if (node && !strcmp(node, "stall.invalid")) {
        sleep(30);
        return EAI_AGAIN;
    }
    return ((gai_fn)dlsym(RTLD_NEXT, "getaddrinfo"))(node, service, hints, res);
}
"""


def headend(tmp, url, env):
    """der-headend with the webhook at url; a fake agent registers gw-1 and leaves, so that
    gateway_offline is raised after 1 s (as in webhook_hostile.py)."""
    inv = write_json(tmp, "inventory.json", {"sites": [{
        "site_id": "s1", "gateways": ["gw-1"], "assets": [{"asset_id": "m1", "type": "meter"}]}]})
    he = Proc([os.path.join(BIN, "der-headend"), "--grpc-listen", "127.0.0.1:0",
               "--http-listen", "127.0.0.1:0", "--db", ":memory:", "--inventory", inv,
               "--alert-eval", "200ms", "--alert-offline-after", "1s", "--alert-webhook", url,
               "--alert-webhook-timeout", "1s", "--alert-webhook-retries", "1"],
              tmp, "headend", ready=" ready", env=env)
    kv = dict(f.split("=", 1) for f in he.ready_line.split() if "=" in f)
    ch = grpc.insecure_channel(kv["grpc"])
    q = queue.Queue()
    q.put(pb.AgentMessage(seq=1, register=pb.Register(
        gateway_id="gw-1", site_id="s1", assets=[pb.AssetInfo(asset_id="m1")])))

    def gen():
        while True:
            m = q.get()
            if m is None:
                return
            yield m
    call = pbg.HeadendStub(ch).Connect(gen())
    next(call)  # RegisterResult
    q.put(None)
    call.cancel()
    ch.close()
    return he


def main():
    tmp = mktemp()
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    check(cc, "no C compiler to build the resolver shim")
    src = os.path.join(tmp, "stall.c")
    so = os.path.join(tmp, "stall.so")
    with open(src, "w") as f:
        f.write(SHIM)
    subprocess.run([cc, "-shared", "-fPIC", "-o", so, src, "-ldl"], check=True)
    # a sanitizer build (make SAN=1) wants its runtime first in the preload list
    ldd = subprocess.run(["ldd", os.path.join(BIN, "der-headend")], capture_output=True,
                         text=True).stdout
    asan = [x.split("=>")[1].split()[0] for x in ldd.splitlines()
            if "libasan" in x and "=>" in x]
    env = dict(os.environ, LD_PRELOAD=" ".join(asan + [so]))
    he = headend(tmp, "http://stall.invalid:9/hook", env)
    check(wait_for(lambda: "event=webhook_failed" in he.log(), 10),
          "no webhook_failed within 10 s (the lookup sleeps 30 s): " + he.log()[-800:])
    check("cannot resolve stall.invalid: no answer within the timeout" in he.log(),
          "reason: " + he.log()[-800:])
    print("ok: a lookup that hangs fails the attempt within the POST's timeout")
    t = time.monotonic()
    rc = he.stop(signal.SIGTERM, timeout=15)
    took = time.monotonic() - t
    check(rc == 0 and took < 5, "SIGTERM with a lookup hanging: exit %s after %.1f s" % (rc, took))
    print("ok: stopped %.1f s after SIGTERM with a lookup still hanging" % took)


if __name__ == "__main__":
    run_main(main)
