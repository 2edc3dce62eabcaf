#!/usr/bin/python3
"""At-least-once telemetry, end to end with the real binaries on 127.0.0.1 (docs/protocol.md,
"Delivery of telemetry"):
- a 20,000-record spool left by a gateway replays into a fresh headend: 20,000 rows, no
  duplicate, paced (never faster than the gateway's replay_rate), in order;
- the headend killed with -9 during steady telemetry and restarted on the same store: every
  sample of the gateway's run is stored once (no gap, no duplicate);
- the same records replayed again (a gateway restarted on a spool the headend already
  committed) add no row.
Before acknowledgements the gateway deleted a record once gRPC took it: the kill lost the
samples in the headend's flush buffer and a replay burst crashed the headend."""

import os
import signal
import socket
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from dersim import BUILD, ROOT, DerSim, check, wait_until  # noqa: E402
from test_e2e_headend import (GATEWAY, HEADEND, SCENARIO, Proc, gateway_config,  # noqa: E402
                              procs, write_inventory)

sys.path.insert(0, os.path.join(ROOT, BUILD, "gen", "py"))
from proto.der.v1 import agent_pb2 as pb  # noqa: E402

N_SPOOL = int(os.environ.get("SPOOL_RECORDS", "20000"))
REPLAY_RATE = 5000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_headend(tmp, inv, db, port, name="headend"):
    return Proc([HEADEND, "--grpc-listen", "127.0.0.1:%d" % port, "--http-listen", "127.0.0.1:0",
                 "--inventory", inv, "--db", db, "--keepalive-time", "1s",
                 "--keepalive-timeout", "1s", "--min-ping-interval", "500ms"],
                name, tmp, ready=" ready", timeout=8)


def rows(db, lo, hi):
    """(asset_id, seq) of the stored telemetry with lo <= seq < hi; read-only, WAL-safe."""
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
    try:
        return c.execute("SELECT asset_id, seq FROM telemetry WHERE seq >= ? AND seq < ?",
                         (lo, hi)).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        c.close()


def write_spool(path, assets, n, seq0, ts0):
    """A spool segment as gateway/uplink/spool.c writes it: 4-byte little-endian length + Telemetry."""
    with open(path, "wb") as f:
        for i in range(n):
            t = pb.Telemetry(asset_id=assets[i % len(assets)], ts_ms=ts0 + i * 10,
                             telemetry_seq=seq0 + i, power_w=float(i), online=True)
            b = t.SerializeToString()
            f.write(len(b).to_bytes(4, "little") + b)


def test_spool_replay(sim, tmp, inv):
    spool = os.path.join(tmp, "spool-replay")
    os.makedirs(spool)
    assets = ["bat-1", "bat-2", "bat-3", "bat-4"]
    seq0, ts0 = 1000, int(time.time() * 1000) - 3600 * 1000
    write_spool(os.path.join(spool, "gw-fleet.0000000001.spool"), assets, N_SPOOL, seq0, ts0)
    db = os.path.join(tmp, "replay.db")
    he = start_headend(tmp, inv, db, 0, "headend-replay")
    grpc_addr = he.ready_line.split()[0].split("=", 1)[1]
    cfg = gateway_config(sim, tmp, "fleet", "null", None,
                         {"spool_dir": spool, "replay_rate": REPLAY_RATE,
                          "telemetry_period": "1h"})
    t0 = time.monotonic()
    gw = Proc([GATEWAY, "-c", cfg, "--headend", grpc_addr], "gateway-replay", tmp)
    done = wait_until(lambda: len(rows(db, seq0, seq0 + N_SPOOL)) >= N_SPOOL, 60, 0.2)
    dt = time.monotonic() - t0
    got = rows(db, seq0, seq0 + N_SPOOL)
    check(done, "replay stored %d of %d rows in %.0f s; gateway: %s" %
          (len(got), N_SPOOL, dt, gw.log()[-1500:]))
    check(len(set(got)) == len(got) == N_SPOOL, "duplicates: %d rows, %d distinct" %
          (len(got), len(set(got))))
    check(dt >= N_SPOOL / REPLAY_RATE * 0.8,
          "replay of %d records took %.2f s: faster than replay_rate %d/s" %
          (N_SPOOL, dt, REPLAY_RATE))
    check(he.alive(), "the headend died during the replay: %s" % he.log())
    # Stop the gateway: its spool must be empty of what the headend acknowledged.
    check(gw.stop() == 0, "gateway exit: %s" % gw.log()[-800:])
    stop = [x for x in gw.log().splitlines() if "event=stop" in x][-1]
    check(" unacked=0 " in stop, "records left after the replay: %s" % stop)
    check(not [f for f in os.listdir(spool) if f.endswith(".spool")],
          "a drained spool left segment files: %s" % os.listdir(spool))
    print("ok: a %d-record spool replayed into a fresh headend in %.1f s (%.0f rows/s, "
          "replay_rate %d/s): %d rows, 0 duplicates; %s" %
          (N_SPOOL, dt, N_SPOOL / dt, REPLAY_RATE, len(got), stop.split("uplink ")[-1]))

    # The same spool again (as after a crash before the acks were seen): no row added.
    write_spool(os.path.join(spool, "gw-fleet.0000000100.spool"), assets, 2000, seq0, ts0)
    gw = Proc([GATEWAY, "-c", cfg, "--headend", grpc_addr], "gateway-replay2", tmp)
    drained = wait_until(lambda: not [f for f in os.listdir(spool) if f.endswith(".spool")],
                         30, 0.2)
    check(gw.stop() == 0 and drained, "second replay not drained: %s %s" %
          (os.listdir(spool), gw.log()[-800:]))
    check(" unacked=0 " in gw.log(), "second replay: %s" % gw.log()[-800:])
    again = rows(db, seq0, seq0 + N_SPOOL)
    check(len(again) == N_SPOOL, "a replayed record added rows: %d" % len(again))
    he.stop()
    print("ok: 2,000 records replayed a second time added no row")


def run_ids(db):
    """Per asset, the seqs the live gateway run produced (they start at its start time in ms)."""
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
    try:
        out = {}
        for a, s in c.execute("SELECT asset_id, seq FROM telemetry WHERE seq > 1000000000000"):
            out.setdefault(a, []).append(s)
        return out
    finally:
        c.close()


def test_headend_kill9(sim, tmp, inv):
    db = os.path.join(tmp, "kill.db")
    port = free_port()
    he = start_headend(tmp, inv, db, port, "headend-kill")
    spool = os.path.join(tmp, "spool-kill")
    cfg = gateway_config(sim, tmp, "fleet", "null", None, {"spool_dir": spool})
    gw = Proc([GATEWAY, "-c", cfg, "--headend", "127.0.0.1:%d" % port], "gateway-kill", tmp)
    check(wait_until(lambda: "event=registered" in gw.log(), 8), "not registered: %s" % gw.log())
    time.sleep(2.5)
    he.stop(signal.SIGKILL)
    time.sleep(1.5)
    he = start_headend(tmp, inv, db, port, "headend-kill2")
    check(wait_until(lambda: gw.log().count("event=registered") >= 2, 10),
          "no reconnect: %s" % gw.log()[-800:])
    time.sleep(1.5)
    check(gw.stop() == 0, "gateway exit: %s" % gw.log()[-800:])
    stop = [x for x in gw.log().splitlines() if "event=stop" in x][-1]
    check(" unacked=" in stop, stop)
    left = int(stop.split(" unacked=")[1].split()[0])
    he.stop()
    per = run_ids(db)
    check(per, "nothing stored")
    produced = stored = 0
    for a, seqs in sorted(per.items()):
        seqs.sort()
        n = seqs[-1] - seqs[0] + 1
        check(len(seqs) == len(set(seqs)), "%s: duplicate rows" % a)
        missing = sorted(set(range(seqs[0], seqs[-1] + 1)) - set(seqs))
        check(not missing, "%s: lost %d samples across the kill -9, first %s" %
              (a, len(missing), missing[:5]))
        produced += n
        stored += len(seqs)
    print("ok: headend killed (-9) during steady telemetry: %d assets, %d samples stored, "
          "0 lost, 0 duplicated (%d left unacknowledged in the spool at the stop)" %
          (len(per), stored, left))


def main():
    tmp = tempfile.mkdtemp(prefix="derloop-delivery-")
    try:
        with DerSim(SCENARIO) as sim:
            inv = write_inventory(sim, tmp)
            test_spool_replay(sim, tmp, inv)
            test_headend_kill9(sim, tmp, inv)
        print("PASS")
        return 0
    finally:
        for p in procs:
            p.stop(signal.SIGKILL)
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
