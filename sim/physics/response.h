/* response: how a real device follows a setpoint: a latency (setpoints wait in a FIFO until
 * they are due), a ramp limit in W/s, and quantisation to the device's resolution. A plain
 * value struct embedded in each asset model. */
#ifndef DERLOOP_RESPONSE_H
#define DERLOOP_RESPONSE_H

#include <stdint.h>

#define RESPONSE_FIFO 64

struct response_params {
    int64_t latency_ms;  /* 0 = applied at the next step */
    double ramp_w_per_s; /* 0 = no ramp limit */
    double quantum_w;    /* 0 = no quantisation */
};

struct response {
    struct response_params p;
    double target; /* the newest setpoint that came due */
    double output; /* what the device delivers now (before the model's physical limits) */
    double ramp_w; /* the ramp's position before quantisation (so slow ramps still move) */
    unsigned head, count;
    struct {
        int64_t due_ms;
        double value;
    } fifo[RESPONSE_FIFO];
};

void response_init(struct response *r, const struct response_params *p, double initial);
/* A new setpoint at now_ms: due at now_ms + latency. A full FIFO drops the oldest entry. */
void response_command(struct response *r, int64_t now_ms, double value);
/* Pops what is due at now_ms, moves output toward target by at most ramp * dt, quantises,
 * and returns the output. */
double response_step(struct response *r, int64_t now_ms, int64_t dt_ms);
/* Drops pending setpoints and sets output and target (a device reboot). */
void response_reset(struct response *r, double value);

#endif
