"""Helpers for the integration tests of `der-sim serve`: start and stop the real binary, read
the endpoints it prints, a small raw Modbus TCP client (for byte-exact and timing tests), and
SunSpec point offsets taken from SunSpec's own model definitions (gateway/devices/sunspec/).

Everything binds and connects to 127.0.0.1 only. A DerSim is a context manager: leaving it
kills the process whatever happened."""

import json
import os
import select
import signal
import socket
import struct
import subprocess
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BUILD = os.environ.get("BUILD", "build")
DERSIM = os.environ.get("DERSIM") or os.path.join(ROOT, BUILD, "bin", "der-sim")
SUNSPEC_DIR = os.path.join(ROOT, "gateway", "devices", "sunspec")


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


class DerSim:
    """`der-sim serve SCENARIO --port-base 0 --config-dir TMP [args]`, started and parsed."""

    def __init__(self, scenario, *args, ready_timeout=15.0):
        self.tmp = tempfile.TemporaryDirectory(prefix="derloop-serve-")
        self.config_dir = os.path.join(self.tmp.name, "configs")
        self.stderr_path = os.path.join(self.tmp.name, "stderr.log")
        cmd = [DERSIM, "serve", os.path.join(ROOT, scenario), "--port-base", "0",
               "--config-dir", self.config_dir] + list(args)
        self.errf = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.errf, cwd=ROOT)
        self.sites = {}
        self.lines = []
        deadline = time.monotonic() + ready_timeout
        buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise Fail("der-sim serve: no 'ready' line within %.0f s; stderr: %s"
                           % (ready_timeout, self.stderr()))
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if not r:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                self.kill()
                raise Fail("der-sim serve exited before 'ready' (status %s); stderr: %s"
                           % (self.proc.poll(), self.stderr()))
            buf += chunk
            done = False
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                line = line.decode()
                self.lines.append(line)
                if line.startswith("ready "):
                    done = True
                elif line.startswith("site="):
                    self._parse_site(line)
            if done:
                break
        self.started = time.monotonic()

    def _parse_site(self, line):
        kv = dict(f.split("=", 1) for f in line.split())
        host, port = kv["listen"].rsplit(":", 1)
        units = {}
        for u in kv["units"].split(","):
            unit, asset, typ = u.split(":")
            units[asset] = {"unit": int(unit), "type": typ}
        self.sites[kv["site"]] = {"host": host, "port": int(port), "units": units}

    def site(self, site_id=None):
        if site_id is None:
            return next(iter(self.sites.values()))
        return self.sites[site_id]

    def config(self, site_id):
        with open(os.path.join(self.config_dir, site_id + ".json")) as f:
            return json.load(f)

    def stderr(self, tail=3000):
        """What der-sim wrote to stderr so far (its last `tail` characters; None = all)."""
        try:
            self.errf.flush()
            with open(self.stderr_path, "rb") as f:
                text = f.read().decode(errors="replace")
                return text if tail is None else text[-tail:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=2.0):
        """Sends sig; returns (exit status, seconds to exit); kills after timeout."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None, time.monotonic() - t0
        return rc, time.monotonic() - t0

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.errf.close()
        self.tmp.cleanup()
        return False


class ModbusError(Exception):
    def __init__(self, code):
        super().__init__("Modbus exception %d" % code)
        self.code = code


class Raw:
    """A raw Modbus TCP client: one request at a time, exact bytes, exact timeouts."""

    def __init__(self, port, timeout=2.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.tid = 0

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def recv_frame(self, timeout=None):
        """One MBAP frame, or None on EOF; socket.timeout when nothing arrives in time."""
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        buf = b""
        while len(buf) < 7 or len(buf) < 6 + struct.unpack(">H", buf[4:6])[0]:
            chunk = self.sock.recv(512)
            if not chunk:
                return None
            buf += chunk
        return buf

    def request(self, unit, pdu, timeout=None):
        """Sends a PDU to unit; returns the reply PDU; raises ModbusError on an exception."""
        self.tid = (self.tid + 1) & 0xFFFF
        self.send(struct.pack(">HHHB", self.tid, 0, len(pdu) + 1, unit) + pdu)
        while True:
            f = self.recv_frame(timeout)
            if f is None:
                raise ConnectionError("closed by the server")
            tid = struct.unpack(">H", f[:2])[0]
            if tid != self.tid:
                continue  # a late reply to an earlier request that timed out
            rpdu = f[7:]
            if rpdu[0] & 0x80:
                raise ModbusError(rpdu[1])
            return rpdu

    def read(self, unit, addr, n, timeout=None):
        r = self.request(unit, struct.pack(">BHH", 3, addr, n), timeout)
        return list(struct.unpack(">%dH" % n, r[2:2 + 2 * n]))

    def write1(self, unit, addr, value, timeout=None):
        self.request(unit, struct.pack(">BHH", 6, addr, value & 0xFFFF), timeout)

    def write(self, unit, addr, values, timeout=None):
        n = len(values)
        self.request(unit, struct.pack(">BHHB", 16, addr, n, 2 * n)
                     + struct.pack(">%dH" % n, *[v & 0xFFFF for v in values]), timeout)


# ---- SunSpec ---------------------------------------------------------------------------------

_models = {}


def model_points(model_id):
    """{point name: (offset from the model's ID register, size, type, sf name)} for the
    model's top-level points, from SunSpec's JSON definition."""
    if model_id not in _models:
        with open(os.path.join(SUNSPEC_DIR, "model_%d.json" % model_id)) as f:
            g = json.load(f)["group"]
        pts, off = {}, 0
        for p in g["points"]:
            pts[p["name"]] = (off, p["size"], p["type"], p.get("sf"))
            off += p["size"]
        _models[model_id] = pts
    return _models[model_id]


def walk(read, base=40000):
    """Walks the SunSpec chain with read(addr, n) -> list of registers. Returns
    [(model id, address of its ID register, L)]."""
    regs = read(base, 2)
    check(regs == [0x5375, 0x6E53], "no 'SunS' marker at %d: %s" % (base, regs))
    models, addr = [], base + 2
    for _ in range(64):
        mid, length = read(addr, 2)
        if mid == 0xFFFF:
            check(length == 0, "end marker with L=%d" % length)
            return models
        models.append((mid, addr, length))
        addr += 2 + length
    raise Fail("SunSpec chain without an end marker")


def s16(v):
    return v - 0x10000 if v & 0x8000 else v


def decode(regs, typ):
    if typ in ("int16", "sunssf"):
        return s16(regs[0])
    if typ in ("uint16", "enum16", "bitfield16"):
        return regs[0]
    if typ in ("uint32", "acc32", "bitfield32", "enum32"):
        return regs[0] << 16 | regs[1]
    if typ == "int32":
        v = regs[0] << 16 | regs[1]
        return v - (1 << 32) if v & 0x80000000 else v
    if typ in ("uint64", "acc64"):
        return regs[0] << 48 | regs[1] << 32 | regs[2] << 16 | regs[3]
    raise ValueError(typ)


def read_point(read, model_addr, model_id, name):
    """A point's value in engineering units (scale factor applied when it has one)."""
    pts = model_points(model_id)
    off, size, typ, sf = pts[name]
    raw = decode(read(model_addr + off, size), typ)
    if sf:
        sfo, _, _, _ = pts[sf]
        return raw * 10.0 ** s16(read(model_addr + sfo, 1)[0])
    return raw


def wait_until(pred, timeout, interval=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()
