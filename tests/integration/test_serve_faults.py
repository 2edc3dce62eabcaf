#!/usr/bin/python3
"""der-sim serve with scenarios/faults-demo.json at --speed 20: every fault the scenario sets is
seen on the wire at its time (the event times below are that file's):

   1m +30s  bat-1     timeout    no reply; other units on the same port still answer
   2m +30s  pv-1      exception  exception 4 to every request
   3m +30s  grid      frozen     the meter's registers stop changing
   4m +30s  evse-1    offline    no reply, then a reboot: controls back to their defaults
   5m +30s  bat-1     slow       replies 800 ms late (wall time)
   6m +10s  bat-1     spike      701 W reads 50000 W (or its int16 saturation)
   7m +1m   boiler-1  device     State FAULT (4), FaultCode 2 (injected)

Each check runs well inside its window (simulated time = wall time since 'ready' x speed)."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from dersim import DerSim, Fail, ModbusError, Raw, check, model_points, s16, walk  # noqa: E402

SPEED = 20.0


class Clock:
    def __init__(self, t0):
        self.t0 = t0

    def sim(self):
        return (time.monotonic() - self.t0) * SPEED

    def wait(self, sim_s):
        """Sleeps until simulated time sim_s; fails if it has already passed by > 5 s."""
        now = self.sim()
        check(now < sim_s + 5, "test too slow: at %.1f s simulated, wanted %.1f s" % (now, sim_s))
        if now < sim_s:
            time.sleep((sim_s - now) / SPEED)


def times_out(port, unit, timeout=0.4):
    c = Raw(port, timeout=timeout)
    try:
        c.read(unit, 40000, 2)
        return False
    except socket.timeout:
        return True
    finally:
        c.close()


def models_of(c, unit):
    return {m: a for m, a, _ in walk(lambda a, n: c.read(unit, a, n))}


def w701(c, unit, base):
    p = model_points(701)
    raw = s16(c.read(unit, base + p["W"][0], 1)[0])
    sf = s16(c.read(unit, base + p["W_SF"][0], 1)[0])
    return raw * 10.0 ** sf, 32767 * 10.0 ** sf


def is_spike(w, wmax):
    """50000 W, or the register's saturation when 50000 W does not fit its scale factor (an
    int16 with the battery's W_SF: the register map clamps instead of changing the SF)."""
    return abs(w - 50000) <= 500 or (wmax < 50000 and w == wmax)


def main():
    with DerSim("scenarios/faults-demo.json", "--speed", str(SPEED)) as sim:
        clk = Clock(sim.started)
        site = sim.site("demo")
        port, u = site["port"], {a: v["unit"] for a, v in site["units"].items()}
        c = Raw(port, timeout=2.0)
        bat_models = models_of(c, u["bat-1"])
        grid_models = models_of(c, u["grid"])
        ev_default = c.read(u["evse-1"], 6, 1)[0]

        # -- 1m: bat-1 timeout
        clk.wait(30)
        check(not times_out(port, u["bat-1"]), "bat-1 silent before its timeout fault")
        clk.wait(75)
        check(times_out(port, u["bat-1"]), "bat-1 answered during its timeout fault (1m-1m30)")
        check(c.read(u["pv-1"], 40000, 2) == [0x5375, 0x6E53],
              "pv-1 on the same port stopped answering during bat-1's timeout")
        clk.wait(95)
        check(not times_out(port, u["bat-1"], 1.0), "bat-1 still silent after its timeout fault")
        print("ok: timeout fault on bat-1 (1m-1m30), other units unaffected")

        # -- 2m: pv-1 exception 4
        clk.wait(135)
        try:
            c.read(u["pv-1"], 40000, 2)
            raise Fail("pv-1 answered normally during its exception fault")
        except ModbusError as e:
            check(e.code == 4, "pv-1 exception %d, want 4" % e.code)
        clk.wait(155)
        check(c.read(u["pv-1"], 40000, 2) == [0x5375, 0x6E53], "pv-1 still failing after 2m30")
        print("ok: exception fault on pv-1 (code 4)")

        # -- 3m: grid frozen. The 203 block (107 registers) changes outside the window (the
        # export energy counter runs at noon) and not inside it.
        g203 = grid_models[203]

        def grid_block():
            return c.read(u["grid"], g203, 107)

        clk.wait(165)
        a = grid_block()
        clk.wait(175)
        b = grid_block()
        check(a != b, "grid meter registers did not change before the frozen fault")
        clk.wait(184)
        a = grid_block()
        clk.wait(204)
        b = grid_block()
        check(a == b, "grid meter registers changed during the frozen fault (3m-3m30)")
        clk.wait(215)
        a = grid_block()
        clk.wait(228)
        b = grid_block()
        check(a != b, "grid meter registers still frozen after 3m30")
        print("ok: frozen fault on the grid meter")

        # -- 4m: evse-1 offline, then a reboot with the controls back to their defaults
        clk.wait(232)
        new_limit = 100 if ev_default != 100 else 80
        c.write1(u["evse-1"], 6, new_limit)
        check(c.read(u["evse-1"], 6, 1)[0] == new_limit, "EVSE limit not written")
        clk.wait(255)
        check(times_out(port, u["evse-1"]), "evse-1 answered while offline (4m-4m30)")
        clk.wait(285)
        c2 = Raw(port, timeout=1.0)
        got = c2.read(u["evse-1"], 6, 1)[0]
        c2.close()
        check(got == ev_default, "EVSE limit after the reboot %d, want the default %d"
              % (got, ev_default))
        print("ok: offline fault on evse-1, controls reset by the reboot")

        # -- 5m: bat-1 slow, 800 ms late in wall time
        clk.wait(306)
        c3 = Raw(port, timeout=3.0)
        t0 = time.monotonic()
        c3.read(u["bat-1"], 40000, 2)
        dt = time.monotonic() - t0
        check(0.75 <= dt < 1.5, "slow reply took %.3f s, want about 0.8 s" % dt)
        t0 = time.monotonic()
        check(c.read(u["pv-1"], 40000, 2) == [0x5375, 0x6E53], "pv-1 failed next to a slow unit")
        check(time.monotonic() - t0 < 0.3, "a slow bat-1 slowed pv-1 down")
        clk.wait(340)
        t0 = time.monotonic()
        c3.read(u["bat-1"], 40000, 2)
        check(time.monotonic() - t0 < 0.3, "bat-1 still slow after 5m30")
        c3.close()
        print("ok: slow fault on bat-1 (%.0f ms)" % (dt * 1000))

        # -- 6m: spike on bat-1 701 W = 50000 W for 10 s: sample every 20 ms around it
        clk.wait(352)
        seen, before = [], w701(c, u["bat-1"], bat_models[701])[0]
        while clk.sim() < 378:
            seen.append((clk.sim(), *w701(c, u["bat-1"], bat_models[701])))
            time.sleep(0.02)
        spiked = [t for t, w, wmax in seen if is_spike(w, wmax)]
        check(spiked, "701 W never read 50000 during the spike (values %s)"
              % sorted(set(w for _, w, _ in seen))[:10])
        check(min(spiked) >= 359 and max(spiked) <= 372,
              "spike seen from %.1f to %.1f s, want within 6m..6m10" % (min(spiked), max(spiked)))
        check(not is_spike(seen[-1][1], seen[-1][2]), "701 W still spiked after 6m10")
        print("ok: spike on bat-1 701 W (%.0f W read from %.1f to %.1f s; %.0f W before)"
              % (max(w for _, w, wmax in seen if is_spike(w, wmax)), min(spiked), max(spiked),
                 before))

        # -- 7m: boiler device fault
        clk.wait(405)
        st = c.read(u["boiler-1"], 2, 1)[0]
        check(st != 4, "boiler in FAULT before its device fault")
        clk.wait(435)
        r = c.read(u["boiler-1"], 0, 15)
        check(r[2] == 4, "boiler State %d during the device fault, want 4 (FAULT)" % r[2])
        check(r[9] == 2, "boiler FaultCode %d, want 2 (injected)" % r[9])
        print("ok: device fault on boiler-1 (State FAULT, FaultCode 2)")

        c.close()
        check(sim.proc.poll() is None, "der-sim died: %s" % sim.stderr())
        rc, _ = sim.stop()
        check(rc == 0, "exit status %s after SIGTERM" % rc)
    print("PASS test_serve_faults")


if __name__ == "__main__":
    t0 = time.monotonic()
    try:
        main()
    except Fail as e:
        print("FAIL:", e)
        sys.exit(1)
    print("took %.1f s" % (time.monotonic() - t0))
