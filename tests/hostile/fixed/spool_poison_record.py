#!/usr/bin/python3
"""A spool record that is not a Telemetry message (a zero-filled block, as a power cut can leave
in a file whose length was written before its data) blocks telemetry delivery for good: the
headend ends the stream with INVALID_ARGUMENT, the gateway rewinds to that record and sends it
first on every new stream, so nothing after it (and no live sample) is ever stored.

Exits 1 while the bug is there: after 12 s, neither the valid record spooled after the poisoned
one nor any live sample is in the headend's store. Exits 0 once the gateway skips (and counts)
an undecodable record."""

import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import hostile as h  # noqa: E402
from hostile import check, pb  # noqa: E402


def stored(db):
    try:
        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
        try:
            return c.execute("SELECT asset_id, seq FROM telemetry").fetchall()
        finally:
            c.close()
    except sqlite3.Error:
        return []


def main():
    tmp = h.mktemp()
    sim, cfgs = h.dersim(tmp)
    db = os.path.join(tmp, "he.db")
    he = h.Proc([os.path.join(h.BIN, "der-headend"), "--grpc-listen", "127.0.0.1:0",
                 "--http-listen", "127.0.0.1:0", "--db", db, "--inventory",
                 os.path.join(h.ROOT, "headend/examples/inventory.json")],
                tmp, "headend", ready=" ready")
    grpc_addr = he.ready_line.split()[0].split("=", 1)[1]
    spool = os.path.join(tmp, "spool")
    os.makedirs(spool)
    ts = h.now_ms() - 60000
    recs = [pb.Telemetry(asset_id="bat-1", ts_ms=ts, telemetry_seq=1000, power_w=1.0,
                         online=True).SerializeToString(),
            b"\0" * 24,  # the poisoned record: a length, then zeros
            pb.Telemetry(asset_id="bat-1", ts_ms=ts + 1, telemetry_seq=1001, power_w=2.0,
                         online=True).SerializeToString()]
    with open(os.path.join(spool, "gw-ref.0000000001.spool"), "wb") as f:
        for r in recs:
            f.write(len(r).to_bytes(4, "little") + r)
    cfg = cfgs["ref"]
    cfg["uplink"] = {"target": grpc_addr, "spool_dir": spool, "backoff_initial": "100ms",
                     "backoff_max": "500ms"}
    gw = h.gateway(tmp, cfg)
    time.sleep(12)
    rows = stored(db)
    seqs = {s for a, s in rows if a == "bat-1"}
    live = [s for a, s in rows if s > 10 ** 12]
    gwlog = gw.log()
    print("stored rows=%d (1000 in: %s, 1001 in: %s, live=%d); gateway disconnects=%d; "
          "headend malformed=%d" % (len(rows), 1000 in seqs, 1001 in seqs, len(live),
                                     gwlog.count("event=disconnected"),
                                     he.log().count("malformed")))
    check(gw.alive() and he.alive(), "a process died")
    check(1001 in seqs and live,
          "the record after the poisoned one and the live samples never reach the store: the "
          "gateway resends the undecodable record first on every stream (%d disconnects)"
          % gwlog.count("event=disconnected"))
    print("ok: an undecodable spool record does not block delivery")


h.run_main(main)
