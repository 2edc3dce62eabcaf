#!/usr/bin/python3
"""Hostile receivers for der-headend's --alert-webhook (headend/webhook.c; FINDINGS.md
finding 14). An alert is raised by a fake agent that registers gw-1 and leaves
(gateway_offline after --alert-offline-after 1s).
- a receiver that accepts and never answers, with --alert-webhook-timeout 30s: SIGTERM used to
  wait for the whole timeout (26 s measured); now the headend stops within a few seconds;
- an IPv6 literal URL (http://[::1]:PORT/): the Host header was `::1:PORT`, which strict HTTP
  servers refuse with 400; now `[::1]:PORT` (skipped when the machine has no IPv6 loopback);
- `HTTP/1.1 2000000000000000000000 OK` was read by sscanf %d (undefined; "HTTP status -1"):
  now "not an HTTP answer"."""

import os
import queue
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from hostile import (BIN, Proc, check, grpc, mktemp, pb, pbg, run_main,  # noqa: E402
                     wait_for, write_json)


class Receiver:
    def __init__(self, family, addr, answer):
        self.heads = []
        self.ls = socket.socket(family)
        self.ls.bind((addr, 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        self.answer = answer
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        data = b""
        try:
            c.settimeout(40)
            while b"\r\n\r\n" not in data:
                d = c.recv(4096)
                if not d:
                    return
                data += d
            self.heads.append(data.split(b"\r\n\r\n")[0].decode(errors="replace"))
            if self.answer is None:
                time.sleep(40)  # accepts, never answers
            else:
                c.sendall(self.answer)
        except OSError:
            pass
        finally:
            c.close()


def headend(tmp, url, timeout):
    inv = write_json(tmp, "inventory.json", {"sites": [{
        "site_id": "s1", "gateways": ["gw-1"], "assets": [{"asset_id": "m1", "type": "meter"}]}]})
    he = Proc([os.path.join(BIN, "der-headend"), "--grpc-listen", "127.0.0.1:0",
               "--http-listen", "127.0.0.1:0", "--db", ":memory:", "--inventory", inv,
               "--alert-eval", "200ms", "--alert-offline-after", "1s", "--alert-webhook", url,
               "--alert-webhook-timeout", timeout, "--alert-webhook-retries", "1"],
              tmp, "headend-%d" % time.monotonic_ns(), ready=" ready")
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
    rx = Receiver(socket.AF_INET, "127.0.0.1", None)
    he = headend(tmp, "http://127.0.0.1:%d/hook" % rx.port, "30s")
    check(wait_for(lambda: rx.heads, 8), "no POST reached the stalling receiver: " + he.log())
    time.sleep(0.3)
    t = time.monotonic()
    rc = he.stop(signal.SIGTERM, timeout=15)
    took = time.monotonic() - t
    check(rc == 0 and took < 5, "SIGTERM with a stalled webhook POST: exit %s after %.1f s" %
          (rc, took))
    print("ok: stopped %.1f s after SIGTERM with a POST stalled (timeout 30s)" % took)

    rx = Receiver(socket.AF_INET, "127.0.0.1", b"HTTP/1.1 2000000000000000000000 OK\r\n\r\n")
    he = headend(tmp, "http://127.0.0.1:%d/hook" % rx.port, "2s")
    check(wait_for(lambda: "event=webhook_failed" in he.log(), 8), "no webhook_failed")
    check('reason="not an HTTP answer"' in he.log(), "absurd status: " + he.log()[-600:])
    he.stop()
    print("ok: an absurd status code is \"not an HTTP answer\"")

    try:
        rx = Receiver(socket.AF_INET6, "::1", b"HTTP/1.1 204 No Content\r\n\r\n")
    except OSError:
        print("skip: no IPv6 loopback")
        return
    he = headend(tmp, "http://[::1]:%d/hook" % rx.port, "2s")
    check(wait_for(lambda: rx.heads, 8), "no POST over IPv6: " + he.log()[-600:])
    check("\r\nHost: [::1]:%d\r\n" % rx.port in rx.heads[0], "Host header: %r" % rx.heads[0])
    he.stop()
    print("ok: Host: [::1]:%d for an IPv6 literal" % rx.port)


if __name__ == "__main__":
    run_main(main)
