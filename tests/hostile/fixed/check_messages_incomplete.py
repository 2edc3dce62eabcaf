#!/usr/bin/python3
"""der-gateway --check refuses every absurd value tried (33 of them; the held ones are cases of
tests/integration/test_hostile.py), but three messages do not name what the operator must fix
(docs/gateway-config.md: "names the file, the JSON path and the bad value on any error"):
- backoff_initial "10s" with backoff_max "1s": `uplink.backoff_max: must be at least
  backoff_initial` (neither value);
- capacity_wh 1e400 (out of double range): `devices[1].capacity_wh: must be a number, got
  null` (the JSON parser turned the number into null: the message shows a value the file
  does not hold);
- a second grid meter: `devices: at most one grid meter, got 2` (not which device).

Exits 1 while any of the three messages lacks the field or the value named below."""

import copy
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import hostile as h  # noqa: E402
from hostile import check  # noqa: E402


def main():
    tmp = h.mktemp()
    sim, cfgs = h.dersim(tmp)
    sim.kill()
    base = cfgs["ref"]
    cases = [
        ('"backoff_initial": "10s", "backoff_max": "1s"',
         lambda c: c.update(uplink={"backoff_initial": "10s", "backoff_max": "1s"}),
         ["uplink.backoff_max", "1s", "10s"]),
        # cJSON keeps no text of an overflowed number: the message says what it was instead
        ("capacity_wh 1e400", None, ["devices[1].capacity_wh", "beyond the range of a double"]),
        ("two grid meters", lambda c: c["devices"][3].update(role="grid"),
         ["devices[3].role", "grid"]),
    ]
    bad = 0
    for name, mut, want in cases:
        c = copy.deepcopy(base)
        path = os.path.join(tmp, "site.json")
        if mut:
            mut(c)
            text = h.json.dumps(c)
        else:
            c["devices"][1]["capacity_wh"] = 12345.5
            text = h.json.dumps(c).replace("12345.5", "1e400")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([os.path.join(h.BIN, "der-gateway"), "--config", path, "--check"],
                           capture_output=True, text=True, timeout=10)
        msg = (r.stdout + r.stderr).strip()
        missing = [w for w in want if w not in msg]
        print("%s: exit %d: %s%s" % (name, r.returncode, msg[-160:],
                                     "  (missing: %s)" % ", ".join(missing) if missing else ""))
        check(r.returncode == 1, "%s: --check did not refuse it" % name)
        bad += bool(missing)
    check(bad == 0, "%d of %d messages do not name the field and the value" % (bad, len(cases)))
    print("ok: every refusal names the field and the value")


h.run_main(main)
