#!/usr/bin/python3
"""An anonymous gRPC client (a gateway id no site lists, no credentials) makes der-headend write
one log line per asset it claims in Register: one 0.5 MB Register with 50,000 asset ids writes
50,000 `event=claim_rejected` lines (about 9 MB of log), and the RegisterResult carries 50,000
rejections back. Repeated, this fills the headend's disk (logs) and costs it CPU, past every
limit of the "gRPC limits" table (docs/operations.md), which bounds streams and message size
but not what one message makes the headend write.

Exits 1 while one Register from an unknown gateway adds more than 1,000 log lines. Exits 0 once
rejected claims are logged with a bound (e.g. the first 5 and a count, as telemetry rejections
are) and Register carries a bounded number of assets."""

import os
import sys
import tempfile
import shutil
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "integration"))
from test_headend_peer import Fail, Gateway, Headend, check, pb  # noqa: E402

N = 50000


def main():
    tmp = tempfile.mkdtemp(prefix="hostile-regflood-")
    he = None
    try:
        he = Headend(tmp)
        before = he.logtext()
        g = Gateway(he.grpc_port, options=[("grpc.max_receive_message_length", 64 << 20)])
        g.send(register=pb.Register(gateway_id="gw-nobody", site_id="site-a", software="x",
                                    assets=[pb.AssetInfo(asset_id="%05d" % i)
                                            for i in range(N)]))
        m = g.next(10)
        g.done.wait(5)
        g.close()
        time.sleep(0.5)
        after = he.logtext()
        lines = len(after.splitlines()) - len(before.splitlines())
        print("one anonymous Register of %d assets: %d log lines, %d bytes of log, "
              "RegisterResult with %s rejections, status %s"
              % (N, lines, len(after) - len(before),
                 len(m.register_result.rejected) if m is not None else "no",
                 g.status and g.status[0]))
        check(he.p.poll() is None, "der-headend died")
        check(lines <= 1000, "an unknown gateway's Register wrote %d log lines" % lines)
        print("ok: rejected claims are logged with a bound")
    except Fail as e:
        print("FAIL: %s" % e)
        return 1
    finally:
        if he:
            he.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


sys.exit(main())
