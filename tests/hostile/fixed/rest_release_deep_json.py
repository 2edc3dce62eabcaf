#!/usr/bin/python3
"""Two REST answers that said the wrong thing (headend/rest.c; FINDINGS.md findings 18, 19):
- `DELETE /sites/:id/estop` when no stop holds answered 202 and moved `since_ms` each time:
  now 200 with `changed` false and the state unchanged (a stop then a release: 202 both);
- `PUT /sites/:id/config` with JSON nested deeper than cJSON's 1000 levels said "the body must
  be a JSON object": now "nested deeper than 1000 levels" (a plain non-object body still gets
  the old message)."""

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

    def req(method, path, body=b""):
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

    # finding 18: a stop, its release, then releases of nothing
    code, r = req("POST", "/sites/s1/estop", b'{"reason":"drill"}')
    check(code == 202 and r["active"] and r["changed"], "POST: %s %s" % (code, r))
    code, r = req("DELETE", "/sites/s1/estop")
    check(code == 202 and not r["active"] and r["changed"], "DELETE: %s %s" % (code, r))
    since = r["since_ms"]
    for _ in range(2):
        code, r = req("DELETE", "/sites/s1/estop")
        check(code == 200 and not r["changed"] and r["since_ms"] == since,
              "DELETE with no stop held: %s %s" % (code, r))
    print("ok: DELETE with no stop held: 200, changed false, since_ms kept")

    # finding 19: 5000 levels of arrays, and one in an object member
    for body in [b"[" * 5000, b'{"strategy":' + b"[" * 1500 + b"]" * 1500 + b"}"]:
        code, r = req("PUT", "/sites/s1/config", body)
        check(code == 400 and "nested deeper than 1000 levels" in r.get("error", ""),
              "deep body: %s %s" % (code, r))
    code, r = req("PUT", "/sites/s1/config", b"[1]")
    check(code == 400 and "must be a JSON object" in r.get("error", ""), "array: %s %s" % (code, r))
    print("ok: a body nested too deep is named so")
    he.stop()


if __name__ == "__main__":
    run_main(main)
