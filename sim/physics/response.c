/* response: how a device follows its setpoint (see response.h and docs/physics.md).
 *
 * Three effects, applied in the order a real inverter or charger shows them:
 *   1. latency: a setpoint waits in a FIFO until now >= commanded + latency_ms; at a step every
 *      due entry is popped and the newest one becomes the target (older ones are superseded
 *      before the device ever acts on them, as when a controller writes faster than the device
 *      polls its registers);
 *   2. ramp: the output moves toward the target by at most ramp_w_per_s * dt;
 *   3. quantisation: the device resolves power in steps of quantum_w (round half away from 0).
 * The ramp runs on an unquantised position (ramp_w), so a ramp slower than one quantum per
 * step still advances instead of being rounded back to where it started. */
#include "sim/physics/response.h"

#include <math.h>
#include <string.h>

void response_init(struct response *r, const struct response_params *p, double initial)
{
    memset(r, 0, sizeof *r);
    r->p = *p;
    response_reset(r, initial);
}

void response_command(struct response *r, int64_t now_ms, double value)
{
    if (r->count == RESPONSE_FIFO) {
        /* Full: the oldest pending setpoint is the one a newer one would supersede anyway. */
        r->head = (r->head + 1) % RESPONSE_FIFO;
        r->count--;
    }
    unsigned tail = (r->head + r->count) % RESPONSE_FIFO;
    r->fifo[tail].due_ms = now_ms + (r->p.latency_ms > 0 ? r->p.latency_ms : 0);
    r->fifo[tail].value = value;
    r->count++;
}

static double quantise(double v, double quantum)
{
    if (quantum <= 0.0)
        return v;
    return quantum * round(v / quantum); /* round(): half away from zero (C11 7.12.9.6) */
}

double response_step(struct response *r, int64_t now_ms, int64_t dt_ms)
{
    while (r->count > 0 && r->fifo[r->head].due_ms <= now_ms) {
        r->target = r->fifo[r->head].value;
        r->head = (r->head + 1) % RESPONSE_FIFO;
        r->count--;
    }

    double diff = r->target - r->ramp_w;
    if (r->p.ramp_w_per_s > 0.0) {
        double max_w = r->p.ramp_w_per_s * (double)dt_ms / 1000.0;
        if (diff > max_w)
            diff = max_w;
        else if (diff < -max_w)
            diff = -max_w;
        r->ramp_w += diff;
    } else {
        r->ramp_w = r->target;
    }
    r->output = quantise(r->ramp_w, r->p.quantum_w);
    return r->output;
}

void response_reset(struct response *r, double value)
{
    r->head = 0;
    r->count = 0;
    r->target = value;
    r->ramp_w = value;
    r->output = quantise(value, r->p.quantum_w);
}
