#!/usr/bin/python3
"""der-sim serve under abuse: garbage, bad MBAP headers, clients that vanish mid-frame or keep
half a frame, 32 concurrent clients, and a clean exit (status 0 within 2 s) on SIGTERM and on
SIGINT. Every check is made against the real binary on 127.0.0.1."""

import os
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from dersim import DerSim, Fail, Raw, check  # noqa: E402

SCENARIO = "scenarios/reference-site.json"


def marker_ok(port, unit):
    c = Raw(port, timeout=2.0)
    try:
        return c.read(unit, 40000, 2) == [0x5375, 0x6E53]
    finally:
        c.close()


def closed_by_server(sock, timeout=2.0):
    sock.settimeout(timeout)
    try:
        while True:
            d = sock.recv(512)
            if not d:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_garbage(port, unit):
    cases = {
        "http": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "protocol id 1": struct.pack(">HHHBBHH", 1, 1, 6, unit, 3, 40000, 2),
        "length 0": struct.pack(">HHHB", 1, 0, 0, unit),
        "length 300": struct.pack(">HHHBB", 1, 0, 300, unit, 3) + b"\0" * 300,
        "random": bytes(range(256)) * 4,
    }
    for name, data in cases.items():
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        check(closed_by_server(s), "garbage '%s': the server kept the connection" % name)
        s.close()
        check(marker_ok(port, unit), "after garbage '%s' the server stopped answering" % name)
    print("ok: garbage and bad MBAP headers close that client only")


def test_unknown_function(port, unit):
    c = Raw(port)
    for fc in (0x07, 0x11, 0x2B, 0x01, 0x05, 0x17, 0x41):
        t0 = time.monotonic()
        try:
            c.request(unit, bytes([fc, 0, 0, 0, 1]))
            raise Fail("function 0x%02x answered normally" % fc)
        except Exception as e:  # ModbusError expected
            check(getattr(e, "code", None) == 1, "function 0x%02x: %r, want exception 1" % (fc, e))
        check(time.monotonic() - t0 < 0.3, "function 0x%02x answered slowly" % fc)
    # Illegal quantity: exception 3 at once (libmodbus alone would sleep 0.5 s here).
    t0 = time.monotonic()
    try:
        c.request(unit, struct.pack(">BHH", 3, 40000, 126))
        raise Fail("126 registers answered normally")
    except Exception as e:
        check(getattr(e, "code", None) == 3, "126 registers: %r, want exception 3" % e)
    check(time.monotonic() - t0 < 0.3, "illegal quantity answered slowly")
    # Function codes with the high bit set: exception 1 with the request's own function byte
    # (fc | 0x80 == fc), a 9-byte frame (libmodbus's formatter wrapped 0x83 into `03 01`).
    for fc in (0x80, 0x83, 0x90, 0xFF):
        c.send(struct.pack(">HHHB", fc, 0, 6, unit) + bytes([fc]) + struct.pack(">HH", 40000, 1))
        f = c.recv_frame()
        check(f is not None and len(f) == 9 and f[7] == fc and f[8] == 1,
              "function 0x%02x: reply %r, want exception 1 with function byte 0x%02x"
              % (fc, f, fc))
    c.close()
    print("ok: unknown functions (0x80..0xFF too) -> exception 1, 126 registers -> exception 3,"
          " at once")


def test_random_requests(port, units, n=3000, seed=1):
    """Well-framed requests with random contents (function codes, addresses, quantities, byte
    counts, lengths): every one gets an answer, normal or exception, with its transaction id,
    and the server survives. Seeded, so a failure replays."""
    import random
    rng = random.Random(seed)
    c = Raw(port, timeout=2.0)
    answered = exceptions = 0
    for i in range(n):
        unit = rng.choice(units + [0, 99, 255])
        fc = rng.choice([3, 3, 4, 6, 16, 16, rng.randrange(256)])
        addr = rng.choice([0, 1, 6, 39999, 40000, 40002, 40070, 40277, 40299, 65535,
                           rng.randrange(65536)])
        qty = rng.choice([0, 1, 2, 10, 123, 124, 125, 126, 2000, rng.randrange(65536)])
        if fc == 16:
            bc = rng.choice([2 * qty & 0xFF, rng.randrange(256)])
            body = struct.pack(">HHB", addr, qty, bc) + bytes(rng.randrange(256)
                                                               for _ in range(rng.choice(
                                                                   [bc, rng.randrange(246)])))
        else:
            body = struct.pack(">HH", addr, qty)
        body = body[:rng.choice([len(body), rng.randrange(len(body) + 1)])][:252]
        pdu = bytes([fc]) + body
        tid = i & 0xFFFF
        c.send(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu)
        f = c.recv_frame()
        check(f is not None, "request %d (unit %d fc %d %r): connection closed" % (i, unit, fc, pdu))
        check(struct.unpack(">H", f[:2])[0] == tid, "request %d: transaction id mismatch" % i)
        check(f[6] == unit, "request %d: reply for unit %d, want %d" % (i, f[6], unit))
        check(f[7] in (fc, fc | 0x80), "request %d: function byte 0x%02x for 0x%02x" % (i, f[7], fc))
        answered += 1
        exceptions += bool(f[7] & 0x80)
    c.close()
    check(marker_ok(port, units[0]), "server unwell after random requests")
    print("ok: %d random well-framed requests answered (%d exceptions)" % (answered, exceptions))


def test_half_frames(port, unit):
    # A client that sends half a frame and stays, and clients that vanish mid-frame.
    frame = struct.pack(">HHHBBHH", 9, 0, 6, unit, 3, 40000, 2)
    stay = socket.create_connection(("127.0.0.1", port), timeout=2)
    stay.sendall(frame[:5])
    for cut in (1, 3, 7, 9):
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(frame[:cut])
        s.close()
    t0 = time.monotonic()
    for _ in range(20):
        check(marker_ok(port, unit), "a half frame from another client stalled the server")
    check(time.monotonic() - t0 < 2.0, "20 reads took %.2f s next to a half frame"
          % (time.monotonic() - t0))
    # The staying client completes its frame later and gets its reply.
    time.sleep(0.2)
    stay.sendall(frame[5:])
    stay.settimeout(2)
    r = stay.recv(64)
    check(len(r) == 13 and r[:2] == b"\x00\x09" and r[9:13] == b"\x53\x75\x6e\x53",
          "completed half frame: got %r" % r)
    stay.close()
    print("ok: half frames and mid-frame disconnects hold nobody else")


def test_concurrent(port, unit, n=32, rounds=30):
    errors, done = [], [0]
    lock = threading.Lock()
    start = threading.Event()

    def worker(k):
        try:
            c = Raw(port, timeout=3.0)
            start.wait()
            for i in range(rounds):
                regs = c.read(unit, 40000, 4)
                if regs[:2] != [0x5375, 0x6E53]:
                    raise Fail("client %d round %d: %s" % (k, i, regs))
            c.close()
            with lock:
                done[0] += 1
        except Exception as e:  # reported below
            with lock:
                errors.append("client %d: %r" % (k, e))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    start.set()
    for t in threads:
        t.join(20)
    dt = time.monotonic() - t0
    check(not errors, "concurrent clients failed: %s" % errors[:3])
    check(done[0] == n, "%d of %d clients finished" % (done[0], n))
    print("ok: %d concurrent clients x %d reads in %.2f s" % (n, rounds, dt))


def test_signal(sig, name):
    with DerSim(SCENARIO) as d:
        site = d.site("ref")
        unit = site["units"]["bat-1"]["unit"]
        # Leave clients connected, one of them mid-frame, when the signal arrives.
        idle = Raw(site["port"])
        idle.read(unit, 40000, 2)
        half = socket.create_connection(("127.0.0.1", site["port"]), timeout=2)
        half.sendall(b"\x00\x01\x00")
        rc, dt = d.stop(sig, timeout=2.0)
        check(rc == 0, "%s: exit status %s (stderr: %s)" % (name, rc, d.stderr()))
        check(dt < 2.0, "%s: exit took %.2f s" % (name, dt))
        check(closed_by_server(idle.sock, 1.0), "%s: a client socket stayed open" % name)
        half.close()
        idle.close()
        print("ok: %s -> exit 0 in %.3f s" % (name, dt))


def main():
    with DerSim(SCENARIO) as d:
        site = d.site("ref")
        port, unit = site["port"], site["units"]["bat-1"]["unit"]
        check(marker_ok(port, unit), "no 'SunS' marker on the battery")
        test_garbage(port, unit)
        test_unknown_function(port, unit)
        test_half_frames(port, unit)
        test_random_requests(port, [v["unit"] for v in site["units"].values()])
        test_concurrent(port, unit)
        check(d.proc.poll() is None, "der-sim died: %s" % d.stderr())
        err = d.stderr(tail=None)
        check("event=bad_frame" in err, "no bad_frame log line on stderr")
        check("reason=" in err, "no disconnect reason on stderr")
    test_signal(signal.SIGTERM, "SIGTERM")
    test_signal(signal.SIGINT, "SIGINT")
    print("PASS test_serve_robust")


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print("FAIL:", e)
        sys.exit(1)
