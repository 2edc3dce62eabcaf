#!/usr/bin/python3
"""der-headend REST security against the real binary (docs/operations.md, "Securing a
deployment", REST: HTTPS, tokens, roles, audit):
- on loopback with no token in the store the API is open (the README's quick start), and says
  so in its log; the first `der-headend token add` (the CLI, on the same SQLite file, while
  the server runs) turns tokens on within a second;
- the store holds no secret (only a salted hash); `token list` shows none;
- no token 401 (JSON error, WWW-Authenticate: Bearer), a bad token 401, viewer GET 200,
  viewer POST 403, operator POST 202, revoked token 401, /healthz for anyone but liveness only;
- the per-token rate limit: 429 with Retry-After;
- the audit trail: rows for the state-changing requests (who, peer, method, path, body
  summary, status, detail), none for the 401s; GET /audit is admin only; GET /dispatch/ID
  says who asked;
- HTTPS with a certificate from a CA this test makes with openssl: curl --cacert works, curl
  without the CA refuses the certificate, plain HTTP on the HTTPS port gets no HTTP answer;
- the non-loopback rule: 0.0.0.0 without HTTPS and without --insecure does not start (and
  says why); with --insecure it starts, says so, and asks for tokens even with none in the
  store; with HTTPS it starts without --insecure; --auth on loopback asks for tokens too.
Every server binds 127.0.0.1 (or 0.0.0.0 for the rule) on a port the kernel picks and is
stopped by the test; files live in a temp dir that is removed."""

import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
HEADEND = os.path.join(BUILD, "bin", "der-headend")
INVENTORY = {"sites": [{"site_id": "site-a", "gateways": ["gw-a"], "assets": [
    {"asset_id": "a-bat", "type": "battery", "min_power_w": -5e6, "max_power_w": 5e6}]}]}


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


class Headend:
    def __init__(self, tmp, db, args=(), http="127.0.0.1:0", name="headend"):
        self.logpath = os.path.join(tmp, name + ".log")
        self.log = open(self.logpath, "ab")
        cmd = [HEADEND, "--grpc-listen", "127.0.0.1:0", "--http-listen", http,
               "--inventory", os.path.join(tmp, "inventory.json"), "--db", db] + list(args)
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log)
        r, _, _ = select.select([self.p.stdout], [], [], 10)
        check(r, "der-headend did not print its ready line within 10 s: %s" % self.logtext())
        line = self.p.stdout.readline().decode().split()
        check(len(line) == 3 and line[2] == "ready", "bad ready line %r: %s"
              % (line, self.logtext()))
        self.port = int(line[1].rsplit(":", 1)[1])

    def logtext(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        return self.p.returncode


def req(port, method, path, token=None, body=None):
    """(status, JSON or text, headers as a dict with lower-case names)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Authorization": "Bearer " + token} if token else {}
    data = None if body is None else json.dumps(body).encode()
    c.request(method, path, body=data, headers=headers)
    r = c.getresponse()
    text = r.read().decode()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    try:
        return r.status, json.loads(text), hdrs
    except ValueError:
        return r.status, text, hdrs


def token_cli(db, *args):
    p = subprocess.run([HEADEND, "token"] + list(args) + ["--db", db], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=20)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def add_token(db, name, role):
    rc, out, err = token_cli(db, "add", "--name", name, "--role", role)
    check(rc == 0 and re.fullmatch(r"dlp_[0-9a-f]{12}_[0-9a-f]{64}\n", out),
          "token add %s: %d %r %r" % (name, rc, out, err))
    return out.strip()


def wait_for(fn, timeout, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def test_tokens_roles_audit(tmp):
    db = os.path.join(tmp, "h.db")
    he = Headend(tmp, db, ["--http-post-burst", "3", "--http-post-per-min", "6"])
    try:
        port = he.port
        # Open while no token exists, on loopback: the quick start works without credentials.
        st, body, _ = req(port, "GET", "/assets")
        check(st == 200 and body[0]["asset_id"] == "a-bat", "open GET /assets: %d %r"
              % (st, body))
        st, d0, _ = req(port, "POST", "/dispatch", body={"asset_id": "a-bat", "mw": 0.1})
        check(st == 202 and d0["requested_by"] == "anonymous", "open POST: %d %r" % (st, d0))
        log = he.logtext()
        check("event=auth_open" in log and "auth=open tokens=0" in log,
              "open mode not logged at start: %s" % log)
        print("ok: no token in the store, loopback: open, and logged (event=auth_open)")

        admin = add_token(db, "root", "admin")
        viewer = add_token(db, "look", "viewer")
        oper = add_token(db, "ops", "operator")
        burst = add_token(db, "burst", "operator")
        t0 = time.time()
        check(wait_for(lambda: req(port, "GET", "/assets")[0] == 401, 3),
              "the first token did not turn tokens on")
        print("ok: tokens asked for %.1f s after the first `token add` (CLI, same store)"
              % (time.time() - t0))

        # The secret is nowhere in the store or in `token list`.
        with sqlite3.connect(db) as c:
            dump = "\n".join(c.iterdump())
        for t in (admin, viewer, oper, burst):
            check(t.split("_")[2] not in dump, "a token secret is in the store")
        rc, out, _ = token_cli(db, "list")
        check(rc == 0 and all(n in out for n in ("root", "look", "ops", "burst"))
              and "admin" in out and not re.search(r"[0-9a-f]{64}", out), "token list: %r" % out)
        print("ok: the store keeps salted hashes only; token list shows no secret")

        st, body, h = req(port, "GET", "/assets")
        check(st == 401 and body["field"] == "authorization" and body["error"]
              and h.get("www-authenticate", "").startswith("Bearer"),
              "no token: %d %r %r" % (st, body, h))
        st, body, h = req(port, "GET", "/nope")
        check(st == 401, "no token, unknown path: %d (the API's shape is not public)" % st)
        forged = viewer[:-1] + ("1" if viewer[-1] == "0" else "0")  # one secret digit off
        st, body, h = req(port, "GET", "/assets", token=forged)
        check(st == 401 and "invalid_token" in h.get("www-authenticate", ""),
              "bad token: %d %r %r" % (st, body, h))
        st, body, _ = req(port, "GET", "/healthz")
        check(st == 200 and body == {"status": "ok"}, "healthz without token: %r" % (body,))
        st, body, _ = req(port, "GET", "/healthz", token=viewer)
        check(st == 200 and body.get("store") == "sqlite", "healthz with token: %r" % (body,))
        st, body, _ = req(port, "GET", "/assets", token=viewer)
        check(st == 200 and body[0]["asset_id"] == "a-bat", "viewer GET: %d %r" % (st, body))
        st, body, h = req(port, "POST", "/dispatch", token=viewer,
                          body={"asset_id": "a-bat", "mw": 0.5})
        check(st == 403 and body["field"] == "role" and "needs operator" in body["error"]
              and "Bearer" in h.get("www-authenticate", ""), "viewer POST: %d %r" % (st, body))
        st, body, _ = req(port, "GET", "/audit", token=viewer)
        check(st == 403, "viewer GET /audit: %d" % st)
        st, d1, _ = req(port, "POST", "/dispatch", token=oper,
                        body={"asset_id": "a-bat", "mw": 0.5, "ttl_s": 60})
        check(st == 202 and d1["requested_by"] == "ops", "operator POST: %d %r" % (st, d1))
        st, g, _ = req(port, "GET", "/dispatch/" + d1["setpoint_id"], token=viewer)
        check(st == 200 and g["requested_by"] == "ops", "GET dispatch: %r" % (g,))
        st, g, _ = req(port, "GET", "/dispatch/" + d0["setpoint_id"], token=viewer)
        check(g["requested_by"] == "anonymous", "open-mode dispatch: %r" % (g,))
        print("ok: no token 401, bad token 401, viewer GET 200 / POST 403, operator POST 202, "
              "requested_by shown")

        # Rate limit: 3 at once, then 6 a minute (one per 10 s).
        codes = []
        for _ in range(4):
            st, body, h = req(port, "POST", "/dispatch", token=burst,
                              body={"asset_id": "a-bat", "mw": 0.01})
            codes.append(st)
        check(codes == [202, 202, 202, 429], "rate limit: %r" % codes)
        ra = int(h.get("retry-after", "0"))
        check(5 <= ra <= 10 and body["field"] == "authorization", "429: %r %r" % (h, body))
        st, _, _ = req(port, "POST", "/dispatch", token=oper, body={"asset_id": "a-bat", "mw": 0})
        check(st == 202, "the limit is per token: %d" % st)
        print("ok: 4th POST in a burst of 3 -> 429, Retry-After: %d; other tokens unaffected" % ra)

        rc, _, err = token_cli(db, "revoke", "ops")
        check(rc == 0, "token revoke: %d %s" % (rc, err))
        st, _, _ = req(port, "GET", "/assets", token=oper)
        check(st == 401, "revoked token: %d" % st)
        rc, _, err = token_cli(db, "revoke", "ops")
        check(rc == 1 and "no token" in err, "revoke twice: %d %r" % (rc, err))
        print("ok: revoked token 401 at once")

        st, a, _ = req(port, "GET", "/audit?limit=100", token=admin)
        check(st == 200, "GET /audit: %d %r" % (st, a))
        rows = [(e["who"], e["method"], e["path"], e["status"]) for e in a["entries"]]
        want = [("anonymous", "POST", "/dispatch", 202),
                ("cli", "CLI", "token add root", 201), ("cli", "CLI", "token add look", 201),
                ("cli", "CLI", "token add ops", 201), ("cli", "CLI", "token add burst", 201),
                ("look", "POST", "/dispatch", 403), ("ops", "POST", "/dispatch", 202),
                ("burst", "POST", "/dispatch", 202), ("burst", "POST", "/dispatch", 202),
                ("burst", "POST", "/dispatch", 202), ("ops", "POST", "/dispatch", 202),
                ("cli", "CLI", "token revoke ops", 200)]
        check(rows == want, "audit rows:\n%s\nwanted\n%s" % (rows, want))
        e = a["entries"][6]
        check(e["peer"].startswith("127.0.0.1:") and e["role"] == "operator"
              and json.loads(e["summary"]) == {"asset_id": "a-bat", "mw": 0.5, "ttl_s": 60}
              and e["detail"] == "setpoint_id=" + d1["setpoint_id"], "audit row: %r" % e)
        check("needs operator" in a["entries"][5]["detail"], "403 row: %r" % a["entries"][5])
        at = a["entries"][6]["at_ms"]
        st, a2, _ = req(port, "GET", "/audit?from=%d&to=%d" % (at, at), token=admin)
        check(st == 200 and any(x["detail"] == e["detail"] for x in a2["entries"])
              and a2["count"] <= 3, "audit from/to: %r" % a2)
        print("ok: audit trail: %d rows, who/peer/method/path/summary/status/detail right; no "
              "401 or 429 rows" % len(rows))

        he.stop()
        log = he.logtext()
        refused = [ln for ln in log.splitlines() if "event=auth_refused" in ln]
        check(any("status=401" in ln and "peer=127.0.0.1:" in ln for ln in refused)
              and any("status=403" in ln and "token=look" in ln for ln in refused)
              and any("status=429" in ln and "token=burst" in ln for ln in refused),
              "refusals not logged: %r" % refused)
        for t in (admin, viewer, oper, burst):
            check(t.split("_")[2] not in log, "a token secret reached the log")
        print("ok: refusals logged (event=auth_refused with status, peer, token name, reason); "
              "no secret in the log")
    finally:
        he.stop()


def make_pki(tmp):
    def ossl(*args):
        p = subprocess.run(["openssl"] + list(args), cwd=tmp, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        check(p.returncode == 0, "openssl %s: %s" % (args[0], p.stdout.decode()))
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=derloop test CA")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(tmp, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    # Another CA that did not sign the server certificate.
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "other.key", "-out", "other.pem", "-days", "2", "-subj", "/CN=other CA")


def curl(*args):
    p = subprocess.run(["curl", "-sS", "--max-time", "5"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=15)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_https(tmp):
    make_pki(tmp)
    db = os.path.join(tmp, "tls.db")
    viewer = add_token(db, "look", "viewer")
    he = Headend(tmp, db, ["--http-tls-cert", os.path.join(tmp, "server.pem"),
                           "--http-tls-key", os.path.join(tmp, "server.key")], name="tls")
    try:
        url = "https://127.0.0.1:%d" % he.port
        rc, out, err = curl("--cacert", os.path.join(tmp, "ca.pem"), url + "/healthz")
        check(rc == 0 and json.loads(out) == {"status": "ok"}, "curl https healthz: %d %r %r"
              % (rc, out, err))
        rc, out, err = curl("--cacert", os.path.join(tmp, "ca.pem"), "-H",
                            "Authorization: Bearer " + viewer, url + "/assets")
        check(rc == 0 and json.loads(out)[0]["asset_id"] == "a-bat", "curl https assets: %r"
              % out)
        rc, out, err = curl("--cacert", os.path.join(tmp, "ca.pem"), "-w", "%{http_code}",
                            "-o", "/dev/null", url + "/assets")
        check(rc == 0 and out == "401", "https without token: %r" % out)
        rc, out, err = curl("--cacert", os.path.join(tmp, "other.pem"), url + "/healthz")
        check(rc != 0 and "certificate" in err.lower(), "another CA accepted: %d %r" % (rc, err))
        # Plain HTTP on the HTTPS port: the TLS handshake fails, no HTTP answer comes back.
        s = socket.create_connection(("127.0.0.1", he.port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except OSError:
            pass
        s.close()
        check(not got.startswith(b"HTTP/"), "plain HTTP answered on the HTTPS port: %r" % got)
        check("tls=https" in he.logtext(), "start does not say https: %s" % he.logtext())
        print("ok: HTTPS: curl --cacert (test CA) 200, another CA refused, plain HTTP gets no "
              "HTTP answer")
    finally:
        he.stop()
    return viewer


def test_listen_rules(tmp):
    db = os.path.join(tmp, "rules.db")
    inv = os.path.join(tmp, "inventory.json")
    t0 = time.time()
    p = subprocess.run([HEADEND, "--grpc-listen", "127.0.0.1:0", "--http-listen", "0.0.0.0:0",
                        "--inventory", inv, "--db", db], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=20)
    err = p.stderr.decode()
    check(p.returncode != 0 and b"ready" not in p.stdout and "not a loopback address" in err
          and "--insecure" in err and "--http-tls-cert" in err,
          "0.0.0.0 without HTTPS: status %d, %r" % (p.returncode, err))
    print("ok: 0.0.0.0 without HTTPS or --insecure refused in %.1f s: %s"
          % (time.time() - t0, [ln for ln in err.splitlines() if "der-headend:" in ln][0]))

    he = Headend(tmp, db, ["--insecure"], http="0.0.0.0:0", name="insecure")
    try:
        log = he.logtext()
        check("event=insecure listener=http" in log and "insecure=yes" in log
              and "auth=tokens tokens=0" in log and "event=auth_no_tokens" in log,
              "--insecure start not logged: %s" % log)
        st, _, _ = req(he.port, "GET", "/assets")
        check(st == 401, "non-loopback with no token in the store must still ask: %d" % st)
        print("ok: 0.0.0.0 with --insecure starts, says so (event=insecure), and asks for tokens "
              "though the store holds none")
    finally:
        he.stop()

    he = Headend(tmp, db, ["--http-tls-cert", os.path.join(tmp, "server.pem"),
                           "--http-tls-key", os.path.join(tmp, "server.key")],
                 http="0.0.0.0:0", name="tls-any")
    try:
        check("event=insecure" not in he.logtext(), "HTTPS logged as insecure")
        rc, out, _ = curl("--cacert", os.path.join(tmp, "ca.pem"),
                          "https://127.0.0.1:%d/healthz" % he.port)
        check(rc == 0 and json.loads(out)["status"] == "ok", "0.0.0.0 HTTPS: %r" % out)
        print("ok: 0.0.0.0 with HTTPS starts without --insecure")
    finally:
        he.stop()

    he = Headend(tmp, os.path.join(tmp, "auth.db"), ["--auth"], name="auth")
    try:
        st, _, _ = req(he.port, "GET", "/assets")
        st2, body, _ = req(he.port, "GET", "/healthz")
        check(st == 401 and st2 == 200 and body == {"status": "ok"},
              "--auth with no token: %d %d %r" % (st, st2, body))
        print("ok: --auth on loopback asks for tokens with none in the store")
    finally:
        he.stop()


def main():
    def on_term(sig, frame):
        raise SystemExit("terminated by signal %d" % sig)
    signal.signal(signal.SIGTERM, on_term)
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="derloop-rest-auth-")
    try:
        with open(os.path.join(tmp, "inventory.json"), "w") as f:
            json.dump(INVENTORY, f)
        test_tokens_roles_audit(tmp)
        test_https(tmp)
        test_listen_rules(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("PASS (%.1f s)" % (time.time() - t0))


if __name__ == "__main__":
    try:
        main()
    except Fail as e:
        print("FAIL: %s" % e)
        sys.exit(1)
