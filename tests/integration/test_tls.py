#!/usr/bin/python3
"""Mutual TLS between der-gateway and der-headend, with a throwaway PKI made here with
Debian's openssl in a temp dir (two CAs, a headend certificate, gateway certificates naming
gw-a, gw-b, gw-b2 by SAN URI, one naming gw-a by CN only, one from the other CA, one expired).

A. Real der-gateway processes (devices from `der-sim serve`): a valid certificate registers;
   one from another CA and an expired one never get through the handshake, one for gw-a
   configured as gw-b is refused at Register, and each refusal says why (the headend's log,
   the gateway's log); server_name is what the headend's certificate is checked against;
   SIGHUP reloads renewed files and the gateway registers without a restart.
B. The hijack of issue 11 replayed with python3-grpcio (a peer we did not write): no client
   certificate gets no stream; gw-a's certificate cannot register as gw-b; a gateway the
   site lists cannot replace gw-b's live session; acks for another site's setpoint, for a
   setpoint never sent, with a 9 GW allocation or for another site's asset are refused and
   never stored APPLIED; the right ack is. A CN-only certificate identifies its gateway.
C. The lockstep runner with the headend in the loop ($DERLOOP_HEADEND_TLS) gives the same
   digest with mutual TLS as without.
D. der-headend's start-up rules: plaintext on a non-loopback address needs --insecure, TLS
   files go together and must be readable, the start line says tls=mutual.
Everything binds 127.0.0.1 on ports the kernel picks and is stopped on any exit."""

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "lib"))
from dersim import DerSim  # noqa: E402
from test_headend_peer import (BUILD, ROOT, Gateway, Headend, check, grpc, pb,  # noqa: E402
                               pbg, wait_for)

GATEWAY = os.path.join(BUILD, "bin", "der-gateway")
HEADEND = os.path.join(BUILD, "bin", "der-headend")
DERSIM = os.path.join(BUILD, "bin", "der-sim")
SCENARIO = "tests/data/headend/dispatch-loop.json"  # site "loop": grid, bat-1, bat-2, pv-1
SERVER_NAME = "headend.test"

# ---- the PKI -------------------------------------------------------------------------------

CA_CNF = """[ca]
default_ca = ca_default
[ca_default]
dir = .
database = %(ca)s.db/index.txt
serial = %(ca)s.db/serial
new_certs_dir = %(ca)s.db
certificate = %(ca)s.pem
private_key = %(ca)s.key
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = %(eku)s
%(san)s
"""


class Pki:
    """CAs and leaf certificates in a directory; `openssl ca` because only it can sign with
    dates in the past (OpenSSL 3.0's `x509 -req` has -days and nothing else)."""

    def __init__(self, d):
        self.d = d
        os.makedirs(d, exist_ok=True)

    def sh(self, *args):
        p = subprocess.run(list(args), cwd=self.d, capture_output=True, text=True, timeout=30)
        check(p.returncode == 0, "%s: %s" % (" ".join(args), p.stderr[-600:]))

    def ca(self, name, cn):
        self.sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-keyout", name + ".key", "-out",
                name + ".pem", "-days", "2", "-subj", "/CN=" + cn)
        os.makedirs(os.path.join(self.d, name + ".db"))
        open(os.path.join(self.d, name + ".db", "index.txt"), "w").close()
        with open(os.path.join(self.d, name + ".db", "serial"), "w") as f:
            f.write("1000\n")

    def leaf(self, ca, name, cn, san=None, eku="clientAuth", dates=None):
        self.sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn)
        cnf = os.path.join(self.d, name + ".cnf")
        with open(cnf, "w") as f:
            f.write(CA_CNF % {"ca": ca, "eku": eku,
                              "san": "subjectAltName = " + san if san else ""})
        when = ["-startdate", dates[0], "-enddate", dates[1]] if dates else ["-days", "2"]
        self.sh("openssl", "ca", "-batch", "-config", cnf, "-extensions", "leaf", "-in",
                name + ".csr", "-out", name + ".pem", "-notext", *when)

    def path(self, name):
        return os.path.join(self.d, name)

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()


def make_pki(d):
    t0 = time.monotonic()
    k = Pki(d)
    k.ca("ca", "derloop test CA")
    k.ca("ca2", "some other CA")
    k.leaf("ca", "headend", "headend", "DNS:%s,IP:127.0.0.1" % SERVER_NAME, eku="serverAuth")
    for g in ("gw-a", "gw-b", "gw-b2", "gw-loop"):
        k.leaf("ca", g, g, "URI:urn:derloop:gateway:" + g)
    k.leaf("ca", "cn-gw-a", "gw-a")  # no SAN: the CN names the gateway
    k.leaf("ca2", "rogue-gw-a", "gw-a", "URI:urn:derloop:gateway:gw-a")
    k.leaf("ca", "expired-gw-a", "gw-a", "URI:urn:derloop:gateway:gw-a",
           dates=("20200101000000Z", "20200102000000Z"))
    # the layout $DERLOOP_HEADEND_TLS wants (sim/run/headend_loop.h)
    loop = os.path.join(d, "loop")
    os.makedirs(loop)
    for src, dst in (("ca.pem", "ca.pem"), ("headend.pem", "headend.pem"),
                     ("headend.key", "headend.key"), ("gw-loop.pem", "gw-loop.pem"),
                     ("gw-loop.key", "gw-loop.key")):
        shutil.copy(k.path(src), os.path.join(loop, dst))
    print("ok: PKI made with openssl in %.2f s (2 CAs, 9 certificates, one expired in 2020)"
          % (time.monotonic() - t0))
    return k


# ---- processes -----------------------------------------------------------------------------

procs = []


class Proc:
    def __init__(self, cmd, logpath):
        self.logpath = logpath
        self.logf = open(logpath, "ab")
        self.p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.logf)
        procs.append(self)

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logf.close()
        return self.p.returncode


class TlsGateway(Gateway):
    """test_headend_peer's grpcio gateway over TLS; cert=None sends no client certificate."""

    def __init__(self, port, pki, cert):
        creds = grpc.ssl_channel_credentials(
            pki.read("ca.pem"), pki.read(cert + ".key") if cert else None,
            pki.read(cert + ".pem") if cert else None)
        self.channel = grpc.secure_channel("127.0.0.1:%d" % port, creds,
                                           options=[("grpc.ssl_target_name_override",
                                                     SERVER_NAME)])
        self._start()

    def _start(self):
        self.out = queue.Queue()
        self.inbox = queue.Queue()
        self.seq = 0
        self.status = None
        self.done = threading.Event()
        self.call = pbg.HeadendStub(self.channel).Connect(self._requests())
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def try_register(self, gateway_id, site_id, assets):
        """The RegisterResult, or None when the stream ended first; then self.status."""
        self.send(register=pb.Register(gateway_id=gateway_id, site_id=site_id,
                                       software="test-tls",
                                       assets=[pb.AssetInfo(asset_id=a) for a in assets]))
        m = self.next(5)
        if m is not None and m.HasField("register_result"):
            self.done.wait(0.5)
            return m.register_result
        self.done.wait(5)
        return None


def site_config(sim, tmp, name, gateway_id, site, prefix, tls):
    """A der-gateway configuration for the served site, renamed (site id, asset ids)."""
    c = sim.config("loop")
    c.update(gateway_id=gateway_id, site_id=site, strategy="null", params={})
    for d in c["devices"]:
        d["asset_id"] = prefix + d["asset_id"]
    c["uplink"] = {"backoff_initial": "200ms", "backoff_max": "1s", "keepalive_time": "1s",
                   "tls": tls}
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump(c, f)
    return path, c


def inventory(conf_a, conf_b):
    def assets(c):
        out = []
        for d in c["devices"]:
            a = {"asset_id": d["asset_id"], "type": d["type"]}
            if d["type"] == "battery":
                a.update(min_power_w=-d["max_charge_w"], max_power_w=d["max_discharge_w"])
            elif d["type"] == "pv":
                a.update(min_power_w=0, max_power_w=d["peak_w"])
            out.append(a)
        return out
    return {"sites": [
        {"site_id": "site-a", "gateways": ["gw-a"], "assets": assets(conf_a)},
        {"site_id": "site-b", "gateways": ["gw-b", "gw-b2"], "assets": assets(conf_b)}]}


def tls_of(pki, cert, server_name=SERVER_NAME, d=None):
    base = d or pki.d
    return {"ca": pki.path("ca.pem"), "cert": os.path.join(base, cert + ".pem"),
            "key": os.path.join(base, cert + ".key"), "server_name": server_name}


# ---- A: der-gateway ------------------------------------------------------------------------

def test_gateways(sim, he, pki, tmp):
    grpc_target = "127.0.0.1:%d" % he.grpc_port
    # the expired gateway's files live in a directory of their own, renewed below
    own = os.path.join(tmp, "rotating")
    os.makedirs(own)
    shutil.copy(pki.path("expired-gw-a.pem"), os.path.join(own, "gw-a.pem"))
    shutil.copy(pki.path("expired-gw-a.key"), os.path.join(own, "gw-a.key"))
    cfg = {
        "expired": site_config(sim, tmp, "expired", "gw-a", "site-a", "a-",
                               tls_of(pki, "gw-a", d=own))[0],
        "rogue": site_config(sim, tmp, "rogue", "gw-a", "site-a", "a-",
                             tls_of(pki, "rogue-gw-a"))[0],
        "as-b": site_config(sim, tmp, "as-b", "gw-b", "site-b", "b-", tls_of(pki, "gw-a"))[0],
        "wrong-name": site_config(sim, tmp, "wrong-name", "gw-a", "site-a", "a-",
                                  tls_of(pki, "gw-a", server_name="wrong.test"))[0],
    }
    gws = {k: Proc([GATEWAY, "-c", v, "--headend", grpc_target],
                   os.path.join(tmp, "gw-%s.log" % k)) for k, v in cfg.items()}

    # gw-a's certificate, configured as gw-b: the handshake passes, Register is refused
    check(wait_for(lambda: "not the client certificate's identity gw-a" in gws["as-b"].log(),
                   8), "gw-a as gw-b: no refusal in its log:\n%s" % gws["as-b"].log()[-1500:])
    line = [x for x in gws["as-b"].log().splitlines()
            if "event=disconnected" in x and "code=" in x and "identity gw-a" in x]
    check(line and "code=7" in line[0], "refusal is not PERMISSION_DENIED: %s" % line)
    line = line[0]
    check("names gateway gw-a, this gateway is gw-b" in gws["as-b"].log(),
          "the gateway did not see its certificate names gw-a")
    hl = he.logtext()
    check("event=register_rejected gateway=gw-b site=site-b cert_identity=gw-a peer=ipv4:127.0.0.1"
          in hl, "headend did not log the identity refusal:\n%s" % hl[-1500:])
    print("ok: gw-a's certificate registering as gw-b: PERMISSION_DENIED (%s)"
          % line.split('reason="')[1].split('"')[0])

    # the expired one and the one from another CA never get through the TLS handshake; the
    # gateway says why at start, the headend's log says the verification failed
    check(wait_for(lambda: "expired at 2020-01-02T00:00:00Z" in gws["expired"].log(), 5),
          "expired: %s" % gws["expired"].log()[-1500:])
    check("not issued by a CA in uplink.tls.ca" in gws["rogue"].log(),
          "rogue: %s" % gws["rogue"].log()[-1500:])
    check(wait_for(lambda: he.logtext().count("certificate verify failed") >= 2, 5),
          "headend log has no failed verification:\n%s" % he.logtext()[-1500:])
    # server_name is the name the headend's certificate must carry (sent as SNI too: the
    # headend's gRPC core says it has no certificate for it; the gateway just waits)
    check(wait_for(lambda: "No match found for server name: wrong.test" in he.logtext(), 5),
          "wrong server_name not seen by the headend")
    check(wait_for(lambda: "event=connect_waiting" in gws["expired"].log(), 8),
          "no connect_waiting line: %s" % gws["expired"].log()[-1000:])
    check(wait_for(lambda: "event=connect_waiting" in gws["wrong-name"].log(), 3),
          "wrong-name: no connect_waiting: %s" % gws["wrong-name"].log()[-800:])
    ag = he.agents()
    check(not any(r["connected"] for r in ag.values()), "someone got registered: %r" % ag)
    print("ok: expired and other-CA certificates are refused in the handshake (headend: "
          "'certificate verify failed'; gateways: 'expired at 2020-01-02T00:00:00Z', 'not "
          "issued by a CA in uplink.tls.ca'); a wrong server_name never connects")
    for k in ("rogue", "as-b", "wrong-name"):
        check(gws[k].stop() == 0, "%s: exit status %s" % (k, gws[k].p.returncode))

    # renewed files + SIGHUP: the same process registers, no restart
    shutil.copy(pki.path("gw-a.pem"), os.path.join(own, "gw-a.pem"))
    shutil.copy(pki.path("gw-a.key"), os.path.join(own, "gw-a.key"))
    t0 = time.monotonic()
    gws["expired"].p.send_signal(signal.SIGHUP)
    check(wait_for(lambda: he.agents()["a-bat-1"]["connected"], 8),
          "no registration after SIGHUP: %s" % gws["expired"].log()[-1500:])
    dt = time.monotonic() - t0
    glog = gws["expired"].log()
    check(gws["expired"].p.poll() is None, "SIGHUP ended der-gateway")
    check("event=tls_reload status=ok" in glog and "event=registered" in glog,
          "reload not logged: %s" % glog[-1500:])
    ag = he.agents()
    check(ag["a-bat-1"]["gateway_id"] == "gw-a" and ag["a-pv-1"]["connected"], "agents %r" % ag)
    check("event=connect gateway=gw-a site=site-a" in he.logtext()
          and "cert_identity=gw-a" in he.logtext(), "connect line without the identity")
    check(wait_for(lambda: (he.http("GET", "/telemetry/a-bat-1")[0] == 200), 5),
          "no telemetry over TLS")
    print("ok: renewed certificate + SIGHUP: registered %.2f s later, same process, "
          "telemetry flows" % dt)
    check(gws["expired"].stop() == 0, "der-gateway exit status after SIGTERM")
    check(wait_for(lambda: not he.agents()["a-bat-1"]["connected"], 5), "gw-a still shown")


# ---- B: the hijack, with a peer we did not write --------------------------------------------

def test_hijack(he, pki):
    port = he.grpc_port
    # 1. no client certificate (and plaintext): no stream at all
    anon = TlsGateway(port, pki, None)
    check(anon.try_register("gw-a", "site-a", ["a-bat-1"]) is None
          and anon.status[0] == grpc.StatusCode.UNAVAILABLE, "no cert: %r" % (anon.status,))
    anon.close()
    plain = Gateway(port)
    check(plain.next(3) is None and plain.done.wait(3)
          and plain.status[0] == grpc.StatusCode.UNAVAILABLE, "plaintext: %r" % (plain.status,))
    plain.close()
    check(wait_for(lambda: "peer did not return a certificate" in he.logtext(), 3),
          "no handshake refusal in the headend log")
    print("ok: without a client certificate (or in plaintext) the handshake is refused "
          "(headend: 'peer did not return a certificate')")

    # 2. the real gw-b is on site-b
    gw_b = TlsGateway(port, pki, "gw-b")
    rr = gw_b.try_register("gw-b", "site-b", ["b-bat-1", "b-bat-2"])
    check(rr and sorted(rr.accepted) == ["b-bat-1", "b-bat-2"], "gw-b: %r" % (rr,))
    session = he.agents()["b-bat-1"].get("session_id")

    # 3. gw-a's certificate claims gw-b; 4. gw-b2 (listed for site-b) tries to replace gw-b
    for cert, claim, want in (("gw-a", "gw-b", "not the client certificate's identity gw-a"),
                              ("gw-b2", "gw-b2", "served by gateway gw-b on a live session")):
        x = TlsGateway(port, pki, cert)
        rr = x.try_register(claim, "site-b", ["b-bat-1", "b-bat-2"])
        check(rr is not None and not rr.accepted and want in rr.rejected[0].reason,
              "%s as %s: %r" % (cert, claim, rr))
        check(x.done.wait(5) and x.status[0] == grpc.StatusCode.PERMISSION_DENIED
              and want in x.status[1], "%s as %s: status %r" % (cert, claim, x.status))
        x.close()
        print("ok: %s's certificate registering as %s for site-b: PERMISSION_DENIED (%s)"
              % (cert, claim, x.status[1]))
    ag = he.agents()
    check(not gw_b.done.is_set() and ag["b-bat-1"]["connected"]
          and ag["b-bat-1"]["gateway_id"] == "gw-b" and ag["b-bat-1"].get("session_id") == session,
          "gw-b's session was disturbed: %r %r" % (gw_b.status, ag["b-bat-1"]))
    hl = he.logtext()
    check("event=register_rejected gateway=gw-b site=site-b cert_identity=gw-a peer=ipv4:" in hl
          and "event=register_rejected gateway=gw-b2 site=site-b cert_identity=gw-b2" in hl,
          "refusals not logged with both ids and the peer")
    print("ok: gw-b's session untouched (same session, connected)")

    # a certificate without SAN names its gateway by CN
    cn = TlsGateway(port, pki, "cn-gw-a")
    rr = cn.try_register("gw-a", "site-a", ["a-bat-1"])
    check(rr and list(rr.accepted) == ["a-bat-1"], "CN-only certificate: %r" % (rr,))
    cn.close()
    check(wait_for(lambda: not he.agents()["a-bat-1"]["connected"], 5), "CN session stays")
    print("ok: a certificate with no SAN URI is identified by its CN (gw-a)")

    # 5. acks: gw-a (its own certificate) on site-a; dispatches to both sites
    gw_a = TlsGateway(port, pki, "gw-a")
    rr = gw_a.try_register("gw-a", "site-a", ["a-bat-1", "a-pv-1"])
    check(rr and len(rr.accepted) == 2, "gw-a: %r" % (rr,))
    gw_a.telemetry("a-bat-1", -1234.0, int(time.time() * 1000))
    check(wait_for(lambda: he.http("GET", "/telemetry/a-bat-1")[1].get("power_w") == -1234.0, 5),
          "telemetry from the grpcio peer over mTLS")

    def post(body):
        st, d = he.http("POST", "/dispatch", body)
        check(st == 202, "POST %r: %d %r" % (body, st, d))
        return d

    def state(sp):
        return he.http("GET", "/dispatch/" + sp)[1]

    sp_b = post({"site_id": "site-b", "mw": 0.002, "ttl_s": 60})["setpoint_id"]
    m = gw_b.next(5)
    check(m and m.setpoint.setpoint_id == sp_b, "gw-b got no setpoint")
    sp_a = post({"asset_id": "a-bat-1", "mw": 0.004, "ttl_s": 60})["setpoint_id"]
    m = gw_a.next(5)
    check(m and m.setpoint.setpoint_id == sp_a, "gw-a got no setpoint")
    sp_q = post({"asset_id": "a-bat-2", "mw": 0.001, "ttl_s": 60})  # a-bat-2: not claimed
    check(sp_q["state"] == "QUEUED", "a-bat-2 dispatch %r" % (sp_q,))
    sp_q = sp_q["setpoint_id"]
    APPLIED = pb.SetpointAck.APPLIED
    forged = [
        (sp_b, [("b-bat-1", 2000.0)], "setpoint of another site"),
        (sp_q, [("a-bat-2", 1000.0)], "never sent on this session"),
        (sp_a, [("a-bat-1", 9e9)], "outside its limits"),
        (sp_a, [("b-bat-1", 4000.0)], "which this session does not serve"),
    ]
    for sp, alloc, _ in forged:
        gw_a.ack(sp, APPLIED, alloc)
    check(wait_for(lambda: all(w in he.logtext() for _, _, w in forged), 5),
          "ack refusals not all logged:\n%s" % "\n".join(
              x for x in he.logtext().splitlines() if "ack_" in x))
    time.sleep(0.2)
    check(state(sp_b)["state"] == "SENT" and state(sp_q)["state"] == "QUEUED"
          and state(sp_a)["state"] == "SENT" and not state(sp_a)["allocations"],
          "a forged ack was stored: %r %r %r" % (state(sp_b), state(sp_q), state(sp_a)))
    st, metrics = he.http("GET", "/metrics")
    check("der_headend_acks_refused_total 4" in metrics, "acks_refused metric")
    print("ok: forged acks refused and not stored (another site's setpoint, one never sent, "
          "9 GW, another site's asset): event=ack_refused x4")

    # the right ack from the right session is stored
    gw_a.ack(sp_a, pb.SetpointAck.RECEIVED)
    gw_a.ack(sp_a, APPLIED, [("a-bat-1", 4000.0)])
    d = wait_for(lambda: (lambda r: r if r["state"] == "APPLIED" else None)(state(sp_a)), 5)
    check(d and [(x["asset_id"], x["power_w"]) for x in d["allocations"]] == [("a-bat-1", 4000.0)],
          "the genuine ack: %r" % (d,))
    print("ok: the grpcio peer over mutual TLS: register, telemetry, setpoint, RECEIVED, "
          "APPLIED with its allocation")
    gw_a.close()
    gw_b.close()


# ---- C: the lockstep runner ----------------------------------------------------------------

def test_runner(pki, tmp):
    wrapper = os.path.join(tmp, "headend-wrapper.sh")
    argsf = os.path.join(tmp, "headend-args.txt")
    with open(wrapper, "w") as f:
        f.write('#!/bin/sh\necho "$@" > "%s"\nexec "%s" "$@"\n' % (argsf, os.path.abspath(HEADEND)))
    os.chmod(wrapper, 0o755)

    def run(out, tls):
        env = dict(os.environ, DERLOOP_HEADEND_BIN=wrapper)
        env.pop("DERLOOP_HEADEND_TLS", None)
        if tls:
            env["DERLOOP_HEADEND_TLS"] = tls
        p = subprocess.run([DERSIM, "run", os.path.join(ROOT, SCENARIO), "--transport", "inproc", "--quiet", "--out",
                            os.path.join(tmp, out)], env=env, capture_output=True, text=True,
                           timeout=60)
        digest = [x for x in p.stdout.splitlines() if x.startswith("digest sha256=")]
        return p.returncode, digest[0] if digest else None, p.stderr

    t0 = time.monotonic()
    rc, plain, err = run("plain", None)
    check(rc == 0 and plain, "plain run: %d %s" % (rc, err[-800:]))
    rc, tls, err = run("tls", os.path.join(pki.d, "loop"))
    check(rc == 0 and tls, "TLS run: %d %s" % (rc, err[-800:]))
    with open(argsf) as f:
        args = f.read()
    check("--tls-client-ca" in args and "--tls-cert" in args, "headend args %r" % args)
    check(tls == plain, "digests differ: %s vs %s" % (tls, plain))
    # without its certificate the runner's gateway cannot even start its uplink
    bad = os.path.join(tmp, "no-gw-cert")
    os.makedirs(bad)
    for n in ("ca.pem", "headend.pem", "headend.key"):
        shutil.copy(os.path.join(pki.d, "loop", n), bad)
    rc, _, err = run("bad", bad)
    check(rc != 0 and "uplink.tls.ca" not in err and "gw-loop.pem" in err,
          "a TLS run without gw-loop's certificate: %d %s" % (rc, err[-500:]))
    print("ok: lockstep runner with the headend in the loop over mutual TLS: same digest as "
          "plaintext (%s..., %.1f s for both runs)" % (plain[14:30], time.monotonic() - t0))


# ---- D: start-up rules ---------------------------------------------------------------------

def test_startup(pki, tmp):
    inv = os.path.join(tmp, "startup-inventory.json")
    with open(inv, "w") as f:
        json.dump({"sites": [{"site_id": "s", "gateways": ["g"], "assets": [
            {"asset_id": "x", "type": "battery"}]}]}, f)
    base = [HEADEND, "--http-listen", "127.0.0.1:0", "--db", ":memory:", "--inventory", inv]
    cases = [
        (["--grpc-listen", "0.0.0.0:0"], 2, "not a loopback address"),
        (["--grpc-listen", "0.0.0.0:0", "--tls-cert", pki.path("headend.pem"), "--tls-key",
          pki.path("headend.key")], 2, "--tls-client-ca (mutual TLS), or --insecure"),
        (["--grpc-listen", "127.0.0.1:0", "--tls-cert", pki.path("headend.pem")], 2,
         "--tls-cert and --tls-key go together"),
        (["--grpc-listen", "127.0.0.1:0", "--tls-client-ca", pki.path("ca.pem")], 2,
         "--tls-client-ca needs --tls-cert"),
        (["--grpc-listen", "127.0.0.1:0", "--tls-cert", pki.path("nope.pem"), "--tls-key",
          pki.path("headend.key")], 1, "nope.pem\": No such file"),
    ]
    for extra, status, want in cases:
        p = subprocess.run(base + extra, capture_output=True, text=True, timeout=10)
        check(p.returncode == status and want in p.stderr and "ready" not in p.stdout,
              "%s: status %d, stderr %r" % (extra, p.returncode, p.stderr[-300:]))
    help_text = subprocess.run([HEADEND, "--help"], capture_output=True, text=True).stdout
    check("--insecure " in help_text and "--tls-client-ca TEXT" in help_text, "--help")
    print("ok: plaintext (or server-only TLS) on 0.0.0.0 needs --insecure; TLS files go "
          "together and must be readable (%d refusals before listening)" % len(cases))


def main():
    tmp = tempfile.mkdtemp(prefix="derloop-tls-")
    t0 = time.monotonic()
    he = None
    try:
        pki = make_pki(os.path.join(tmp, "pki"))
        test_startup(pki, tmp)
        with DerSim(SCENARIO) as sim:
            _, conf_a = site_config(sim, tmp, "probe-a", "gw-a", "site-a", "a-", {})
            _, conf_b = site_config(sim, tmp, "probe-b", "gw-b", "site-b", "b-", {})
            he = Headend(tmp, ["--tls-cert", pki.path("headend.pem"), "--tls-key",
                               pki.path("headend.key"), "--tls-client-ca", pki.path("ca.pem"),
                               "--keepalive-time", "1s", "--min-ping-interval", "500ms"],
                         db=":memory:", inventory=inventory(conf_a, conf_b))
            check("tls=mutual insecure=no" in he.logtext(), "start line: %s" % he.logtext())
            test_gateways(sim, he, pki, tmp)
            test_hijack(he, pki)
            check(he.stop() == 0, "headend exit status")
        test_runner(pki, tmp)
        print("PASS (%.1f s)" % (time.monotonic() - t0))
        return 0
    except Exception:
        if he:
            print("---- headend log tail:\n" + he.logtext()[-3000:])
        raise
    finally:
        for p in procs:
            if p.p.poll() is None:
                p.stop(signal.SIGKILL)
        if he:
            he.stop(signal.SIGKILL)
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
