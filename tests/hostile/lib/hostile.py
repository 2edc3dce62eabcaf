"""Helpers for the hostile tests (tests/hostile/open/*, tests/integration/test_hostile.py):
processes that are always stopped, a scriptable malicious headend (grpcio), a scriptable
malicious Modbus TCP device (raw sockets), and the gateway started against them.

Loopback only (127.0.0.1), ports picked by the kernel, temp dirs from mkdtemp; every process
started is tracked and killed by cleanup()."""

import json
import os
import queue
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
BIN = os.path.join(BUILD, "bin")
sys.path.insert(0, os.path.join(BUILD, "gen", "py"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "lib"))

import grpc  # noqa: E402
from proto.der.v1 import agent_pb2 as pb  # noqa: E402
from proto.der.v1 import agent_pb2_grpc as pbg  # noqa: E402

_procs = []
_tmps = []


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def mktemp(prefix="derloop-hostile-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmps.append(d)
    return d


def now_ms():
    return int(time.time() * 1000)


def wait_for(fn, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


class Proc:
    """A child process, stderr (and stdout unless `ready` is wanted) to a log file."""

    def __init__(self, cmd, tmp, name, ready=None, timeout=10.0, env=None):
        self.name = name
        self.log_path = os.path.join(tmp, name + ".log")
        self.logf = open(self.log_path, "wb")
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE if ready else self.logf,
                                  stderr=self.logf, cwd=ROOT, env=env)
        _procs.append(self)
        self.ready_line = None
        if ready:
            end = time.monotonic() + timeout
            buf = b""
            while time.monotonic() < end and self.ready_line is None:
                r, _, _ = select.select([self.p.stdout], [], [], 0.2)
                if r:
                    chunk = os.read(self.p.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    buf += chunk
                    for line in buf.decode(errors="replace").splitlines():
                        if ready in line:
                            self.ready_line = line
            if self.ready_line is None:
                self.kill()
                raise Fail("%s: no ready line: %s" % (name, self.log()[-2000:]))

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.p.poll() is None

    def send_signal(self, sig):
        if self.p.poll() is None:
            self.p.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.p.returncode

    def kill(self):
        if self.p.poll() is None:
            try:
                self.p.send_signal(signal.SIGCONT)
            except OSError:
                pass
            self.p.kill()
            self.p.wait()


def cleanup():
    for p in _procs:
        try:
            p.kill()
            if p.p.stdout:
                p.p.stdout.close()
            p.logf.close()
        except Exception:
            pass
    del _procs[:]
    for d in _tmps:
        shutil.rmtree(d, ignore_errors=True)
    del _tmps[:]


def run_main(fn):
    """Runs fn(); prints the failure; always cleans up; exits 0/1."""
    rc = 1
    try:
        fn()
        rc = 0
    except Fail as e:
        print("FAIL: %s" % e)
    finally:
        cleanup()
    sys.exit(rc)


# ---- der-sim -----------------------------------------------------------------------------------

def dersim(tmp, scenario="scenarios/reference-site.json", *args):
    """der-sim serve SCENARIO --loop on a free port; returns (Proc, {site_id: config dict})."""
    cfgdir = os.path.join(tmp, "sim-configs")
    p = Proc([os.path.join(BIN, "der-sim"), "serve", os.path.join(ROOT, scenario),
              "--port-base", "0", "--config-dir", cfgdir, "--loop"] + list(args),
             tmp, "der-sim", ready="ready sites=")
    cfgs = {}
    for f in os.listdir(cfgdir):
        if f.endswith(".json"):
            with open(os.path.join(cfgdir, f)) as fh:
                cfgs[f[:-5]] = json.load(fh)
    return p, cfgs


def write_json(tmp, name, obj):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        json.dump(obj, f)
    return path


def gateway(tmp, cfg, name="gateway", args=()):
    path = write_json(tmp, name + ".json", cfg)
    return Proc([os.path.join(BIN, "der-gateway"), "--config", path] + list(args), tmp, name)


# ---- a malicious headend -----------------------------------------------------------------------

class EvilHeadend:
    """A grpcio Headend whose behaviour is a script: on_stream(ctx) is called per stream with a
    StreamCtx; it reads AgentMessages (ctx.recv) and yields HeadendMessages (ctx.send)."""

    def __init__(self, script, max_msg=4 * 1024 * 1024):
        self.script = script
        self.streams = 0
        self.received = []           # every AgentMessage, in order (all streams)
        self.lock = threading.Lock()
        outer = self

        class Servicer(pbg.HeadendServicer):
            def Connect(self, request_iterator, context):
                ctx = StreamCtx(outer, request_iterator, context)
                with outer.lock:
                    outer.streams += 1
                    ctx.n = outer.streams
                try:
                    for m in outer.script(ctx):
                        yield m
                finally:
                    ctx.done.set()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                                  options=[("grpc.max_send_message_length", max_msg),
                                           ("grpc.max_receive_message_length", max_msg),
                                           ("grpc.http2.min_ping_interval_without_data_ms", 100),
                                           ("grpc.keepalive_permit_without_calls", 1)])
        servicer = Servicer()
        # bytes yielded by a script go on the wire as they are (garbage HeadendMessages)
        handler = grpc.method_handlers_generic_handler("der.v1.Headend", {
            "Connect": grpc.stream_stream_rpc_method_handler(
                servicer.Connect, request_deserializer=pb.AgentMessage.FromString,
                response_serializer=lambda m: m if isinstance(m, bytes)
                else m.SerializeToString())})
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.target = "127.0.0.1:%d" % self.port

    def stop(self):
        self.server.stop(0)


class StreamCtx:
    def __init__(self, he, it, context):
        self.he = he
        self.it = it
        self.context = context
        self.inbox = queue.Queue()
        self.done = threading.Event()
        self.seq = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for m in self.it:
                with self.he.lock:
                    self.he.received.append(m)
                self.inbox.put(m)
        except Exception:
            pass
        self.inbox.put(None)

    def recv(self, timeout=5.0):
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def msg(self, **body):
        self.seq += 1
        return pb.HeadendMessage(seq=self.seq, **body)

    def register_result(self, reg, acks=True):
        return self.msg(register_result=pb.RegisterResult(
            accepted=[a.asset_id for a in reg.register.assets], telemetry_acks=acks))


# ---- a malicious Modbus TCP device -------------------------------------------------------------

class EvilModbus:
    """A Modbus TCP server on 127.0.0.1:0. handler(sock, tid, unit, pdu) answers each request
    (it may send anything, sleep, close). Threads per connection; stop() closes everything."""

    def __init__(self, handler):
        self.handler = handler
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.stopped = threading.Event()
        self.conns = []
        self.requests = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                self.ls.settimeout(0.2)
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            c.settimeout(0.5)
            while not self.stopped.is_set():
                try:
                    chunk = c.recv(1024)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 7 and len(buf) >= 6 + struct.unpack(">H", buf[4:6])[0]:
                    n = 6 + struct.unpack(">H", buf[4:6])[0]
                    f, buf = buf[:n], buf[n:]
                    tid, _, _, unit = struct.unpack(">HHHB", f[:7])
                    self.requests += 1
                    if self.handler(c, tid, unit, f[7:]) is False:
                        c.close()
                        return
        except OSError:
            return

    def stop(self):
        self.stopped.set()
        try:
            self.ls.close()
        except OSError:
            pass
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def mbap(tid, unit, pdu):
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu
