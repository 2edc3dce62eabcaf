#!/usr/bin/python3
"""Ambiguous configuration bodies at der-headend's REST API (headend/rest.c,
gateway/control/confsync.c; FINDINGS.md finding 13), both stored as version N before:
- `{"strategy":"null"} trailing`: cJSON stops after the first value, the rest was ignored
  (any JSON body: dispatch, tokens, estop too);
- `{"strategy":"null","strategy":"charge"}`: stored with both keys; the gateway runs the first
  (null), GET /sites/:id/config shows both and most JSON readers take the last (charge).
Both must be 400 now (the duplicate naming the key), and nothing stored."""

import json
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from hostile import BIN, Proc, check, mktemp, run_main, write_json  # noqa: E402


def main():
    tmp = mktemp()
    inv = write_json(tmp, "inventory.json", {"sites": [{
        "site_id": "s1", "gateways": ["gw-1"], "assets": [
            {"asset_id": "b1", "type": "battery", "capacity_wh": 10000,
             "min_power_w": -5000, "max_power_w": 5000}]}]})
    he = Proc([os.path.join(BIN, "der-headend"), "--grpc-listen", "127.0.0.1:0",
               "--http-listen", "127.0.0.1:0", "--db", ":memory:", "--inventory", inv],
              tmp, "headend", ready=" ready")
    kv = dict(f.split("=", 1) for f in he.ready_line.split() if "=" in f)
    host, port = kv["http"].split(":")

    def req(method, path, body):
        s = socket.create_connection((host, int(port)), timeout=5)
        s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\nConnection: close\r\n\r\n" %
                   (method, path, len(body))).encode() + body)
        out = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            out += c
        s.close()
        head, _, rb = out.partition(b"\r\n\r\n")
        return int(head.split(b" ")[1]), json.loads(rb or b"null")

    for body, want in [(b'{"strategy":"null"} trailing', None),
                       (b'{"strategy":"null","strategy":"charge"}', "strategy"),
                       (b'{"strategy":"net_zero","params":{"target_w":1,"target_w":2}}',
                        "target_w")]:
        code, r = req("PUT", "/sites/s1/config", body)
        check(code == 400 and (want is None or r.get("field") == want),
              "PUT %r: %d %s" % (body, code, r))
        print("ok: PUT %s -> 400 %s" % (body.decode()[:50], r["error"]))
    code, r = req("GET", "/sites/s1/config", b"")
    check(code == 200 and r["desired"] is None, "something was stored: %s" % r)
    code, r = req("POST", "/sites/s1/estop", b'{"reason":"x"}garbage')
    check(code == 400, "estop with trailing garbage: %d %s" % (code, r))
    code, r = req("PUT", "/sites/s1/config", b'{"strategy":"null"}\r\n ')
    check(code == 200 and r["version"] == 1, "trailing white space is fine: %d %s" % (code, r))
    print("ok: nothing stored from them; trailing white space still accepted")


if __name__ == "__main__":
    run_main(main)
