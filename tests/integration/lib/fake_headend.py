#!/usr/bin/python3
"""A small stand-in for der-headend, written with python3-grpcio, so the gateway's uplink can
be tested while the real headend is being written, and as a peer we did not write in C.

It speaks the same protocol (proto/der/v1/agent.proto) and a subset of the REST API:
GET /agents (one entry per asset), GET /telemetry/ASSET_ID (?from=... for every sample),
POST /dispatch {asset_id|site_id, mw, ttl_s} (plus the test-only "repeat": N, which delivers
the same setpoint N times, and "expires_ms"), GET /dispatch/ID (state, allocations, acks), in
der-headend's JSON shapes. Command line: --grpc-listen HOST:PORT --http-listen HOST:PORT
(port 0 = any free one; --inventory and --db are accepted and ignored);
prints `grpc=HOST:PORT http=HOST:PORT ready` on stdout when it listens. Loopback only."""

import argparse
import json
import os
import queue
import signal
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, os.environ.get("BUILD", "build"), "gen", "py"))
import grpc  # noqa: E402
from proto.der.v1 import agent_pb2 as pb  # noqa: E402
from proto.der.v1 import agent_pb2_grpc as pbg  # noqa: E402


def now_ms():
    return int(time.time() * 1000)


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.agents = {}      # gateway_id -> dict
        self.streams = {}     # gateway_id -> queue of HeadendMessage
        self.telemetry = {}   # asset_id -> dict (latest)
        self.tel_count = {}   # asset_id -> messages received
        self.tel_hist = {}    # asset_id -> every sample received, in order
        self.dispatch = {}    # setpoint_id -> dict with acks
        self.next_id = 1
        self.log = []


S = State()


def log(line):
    sys.stderr.write("fake-headend %s\n" % line)
    sys.stderr.flush()


class Headend(pbg.HeadendServicer):
    def Connect(self, request_iterator, context):
        out = queue.Queue()
        gw = {"id": None}
        done = threading.Event()

        def reader():
            try:
                for m in request_iterator:
                    body = m.WhichOneof("body")
                    if body == "register":
                        r = m.register
                        gw["id"] = r.gateway_id
                        with S.lock:
                            S.agents[r.gateway_id] = {
                                "gateway_id": r.gateway_id, "site_id": r.site_id,
                                "assets": [a.asset_id for a in r.assets],
                                "primary_asset_id": r.primary_asset_id,
                                "software": r.software, "connected": True,
                                "connected_at_ms": now_ms(), "last_seen_ms": now_ms(),
                                "seq_ok": True, "last_seq": m.seq, "registers":
                                S.agents.get(r.gateway_id, {}).get("registers", 0) + 1}
                            S.streams[r.gateway_id] = out
                        log("event=register gateway=%s site=%s assets=%d" %
                            (r.gateway_id, r.site_id, len(r.assets)))
                        res = pb.HeadendMessage(seq=1)
                        res.register_result.accepted.extend([a.asset_id for a in r.assets]
                                                            or [r.primary_asset_id])
                        out.put(res)
                        continue
                    with S.lock:
                        a = S.agents.get(gw["id"])
                        if a:
                            a["last_seen_ms"] = now_ms()
                            if m.seq != a["last_seq"] + 1:
                                a["seq_ok"] = False
                            a["last_seq"] = m.seq
                        if body == "telemetry":
                            t = m.telemetry
                            aid = t.asset_id or (a["primary_asset_id"] if a else "")
                            prev = S.telemetry.get(aid)
                            S.telemetry[aid] = {
                                "asset_id": aid, "ts_ms": t.ts_ms, "telemetry_seq": t.telemetry_seq,
                                "power_w": t.power_w, "setpoint_w": t.setpoint_w,
                                "online": t.online, "status": t.status,
                                "gateway_id": gw["id"], "received_ms": now_ms(),
                                "seq_monotonic": prev is None or
                                t.telemetry_seq > prev["telemetry_seq"] or
                                (prev.get("seq_monotonic") is False)}
                            if t.WhichOneof("details") == "storage":
                                S.telemetry[aid]["soc"] = t.storage.soc
                            S.tel_count[aid] = S.tel_count.get(aid, 0) + 1
                            S.tel_hist.setdefault(aid, []).append(
                                {"telemetry_seq": t.telemetry_seq, "power_w": t.power_w,
                                 "ts_ms": t.ts_ms})
                        elif body == "setpoint_ack":
                            k = m.setpoint_ack
                            d = S.dispatch.setdefault(k.setpoint_id, {"acks": []})
                            st = pb.SetpointAck.State.Name(k.state)
                            d["acks"].append({"state": st, "detail": k.detail,
                                              "at_ms": now_ms()})
                            if st != "RECEIVED" or d.get("state") in (None, "SENT"):
                                d["state"] = st
                                d["detail"] = k.detail
                            if k.allocations:
                                d["allocations"] = [{"asset_id": x.asset_id,
                                                     "power_w": x.power_w}
                                                    for x in k.allocations]
            except grpc.RpcError:
                pass
            finally:
                done.set()
                out.put(None)

        threading.Thread(target=reader, daemon=True).start()
        seq = 1
        while True:
            try:
                msg = out.get(timeout=0.2)
            except queue.Empty:
                if done.is_set() or not context.is_active():
                    break
                continue
            if msg is None:
                break
            if msg.seq != 1:
                seq += 1
                msg.seq = seq
            yield msg
        with S.lock:
            if gw["id"] and S.streams.get(gw["id"]) is out:
                S.agents[gw["id"]]["connected"] = False
                del S.streams[gw["id"]]
        log("event=disconnect gateway=%s" % gw["id"])


def route(target_asset, target_site):
    """The stream that serves an asset or a site (or None)."""
    for gid, a in S.agents.items():
        if not a["connected"]:
            continue
        if target_site and a["site_id"] == target_site:
            return gid
        if target_asset and (target_asset in a["assets"] or
                             target_asset == a["primary_asset_id"]):
            return gid
    return None


class Http(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path, _, query = self.path.partition("?")
        with S.lock:
            if path == "/agents":  # one entry per asset, as der-headend
                out = []
                for gid, a in S.agents.items():
                    for aid in a["assets"] or [a["primary_asset_id"]]:
                        out.append({"asset_id": aid, "site_id": a["site_id"],
                                    "gateway_id": gid, "connected": a["connected"],
                                    "session_id": a["registers"] if a["connected"] else None,
                                    "last_seen_ms": a["last_seen_ms"]})
                return self.reply(200, out)
            if path.startswith("/telemetry/"):
                aid = path[len("/telemetry/"):]
                if query:  # a range: every sample kept, in arrival order
                    return self.reply(200, {"asset_id": aid,
                                            "samples": S.tel_hist.get(aid, [])[-5000:]})
                t = S.telemetry.get(aid)
                if not t:
                    return self.reply(404, {"error": "no telemetry for %s" % aid})
                return self.reply(200, t)
            if path.startswith("/dispatch/"):
                d = S.dispatch.get(path[len("/dispatch/"):])
                return self.reply(200 if d else 404, d or {"error": "unknown"})
            if path == "/healthz":
                return self.reply(200, {"ok": True})
        self.reply(404, {"error": "not found"})

    def do_POST(self):
        if self.path != "/dispatch":
            return self.reply(404, {"error": "not found"})
        n = int(self.headers.get("Content-Length") or 0)
        try:
            req = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return self.reply(400, {"error": "body: not JSON"})
        if "mw" not in req or not isinstance(req["mw"], (int, float)):
            return self.reply(400, {"error": "mw: required number"})
        ttl = req.get("ttl_s", 900)
        with S.lock:
            gid = route(req.get("asset_id"), req.get("site_id"))
            if not gid:
                return self.reply(404, {"error": "no connected gateway serves that target"})
            sid = "sp-%d" % S.next_id
            S.next_id += 1
            m = pb.HeadendMessage(seq=2)
            m.setpoint.setpoint_id = sid
            if req.get("asset_id"):
                m.setpoint.asset_id = req["asset_id"]
            elif req.get("site_id"):
                m.setpoint.site_id = req["site_id"]
            m.setpoint.power_w = req["mw"] * 1e6
            m.setpoint.expires_ms = req.get("expires_ms", now_ms() + int(ttl * 1000))
            S.dispatch[sid] = {"setpoint_id": sid, "state": "SENT", "acks": [],
                               "allocations": [], "gateway_id": gid}
            for _ in range(int(req.get("repeat", 1))):
                S.streams[gid].put(m)
        self.reply(202, {"setpoint_id": sid, "state": "SENT", "power_w": req["mw"] * 1e6})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grpc-listen", dest="grpc", default="127.0.0.1:0")
    ap.add_argument("--http-listen", dest="http", default="127.0.0.1:0")
    ap.add_argument("--db", default=":memory:")  # accepted for compatibility, unused
    ap.add_argument("--inventory", default="")   # likewise: every claim is accepted
    ap.add_argument("--min-ping-interval-ms", type=int, default=500)
    args = ap.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64), options=[
        ("grpc.http2.min_recv_ping_interval_without_data_ms", args.min_ping_interval_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.keepalive_time_ms", 1000), ("grpc.keepalive_timeout_ms", 1000)])
    pbg.add_HeadendServicer_to_server(Headend(), server)
    gport = server.add_insecure_port(args.grpc)
    server.start()
    host, port = args.http.rsplit(":", 1)
    httpd = ThreadingHTTPServer((host, int(port)), Http)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    ghost = args.grpc.rsplit(":", 1)[0]
    print("grpc=%s:%d http=%s:%d ready" % (ghost, gport, host, httpd.server_address[1]),
          flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    stop.wait()
    httpd.shutdown()
    server.stop(0.5).wait()


if __name__ == "__main__":
    main()
