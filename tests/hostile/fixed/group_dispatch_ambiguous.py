#!/usr/bin/python3
"""Hostile wave 3, finding 26: `POST /dispatch` with group_id and site_id (or asset_id) together
took the site (or asset) and dropped group_id without a word: {"group_id":"vpp","site_id":
"site-1","mw":1} queued the whole group's 1 MW for site-1 alone (202). Now 400 naming
group_id; group_id alone and site_id alone still work. One der-headend (SQLite), about 1 s."""
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration", "lib"))
from test_headend_peer import Headend  # noqa: E402

INVENTORY = {"sites": [
    {"site_id": s, "group": "vpp", "gateways": ["gw-" + s], "assets": [
        {"asset_id": s + "-bat", "type": "battery", "capacity_wh": 1e6,
         "min_power_w": -1e6, "max_power_w": 1e6}]} for s in ("site-1", "site-2")]}


def main():
    tmp = tempfile.mkdtemp(prefix="hostile-group-")
    he = Headend(tmp, [], inventory=INVENTORY)
    try:
        bad = []
        for extra in ({"site_id": "site-1"}, {"asset_id": "site-1-bat"}):
            body = dict({"group_id": "vpp", "mw": 1, "ttl_s": 60}, **extra)
            st, r = he.http("POST", "/dispatch", body)
            if st != 400 or r.get("field") != "group_id":
                bad.append("%r: %d %r" % (body, st, r))
        st, r = he.http("POST", "/dispatch", {"site_id": "site-1", "mw": 0.1, "ttl_s": 60})
        if st != 202:
            bad.append("site_id alone: %d %r" % (st, r))
        st, r = he.http("POST", "/dispatch", {"group_id": "vpp", "mw": 0.1, "ttl_s": 60})
        if st == 400:  # no gateway connected: 409, never a 400
            bad.append("group_id alone: %d %r" % (st, r))
        if bad:
            print("FAIL: " + "; ".join(bad))
            return 1
        print("ok: group_id with site_id or asset_id is refused (400 group_id)")
        return 0
    finally:
        he.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
