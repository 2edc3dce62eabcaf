/* pid: a discrete PID controller for power loops (W in, W out), with the field fixes a plain
 * PID lacks: deadband, integral decay, anti-windup, derivative on measurement, output rate
 * limit, quantisation to a register's resolution and a sign hysteresis against
 * charge/discharge flip-flop, and an optional feed-forward term (pid_step_ff) that the
 * P, I and D terms then correct. A value struct owned by its caller; time is passed in. */
#ifndef DERLOOP_PID_H
#define DERLOOP_PID_H

#include <stdint.h>

struct pid_cfg {
    double kp;            /* W of output per W of error */
    double ki_per_s;      /* integral gain, W of output per W of error per second */
    double kd_s;          /* derivative gain, W of output per W/s of measurement change */
    double deadband_w;    /* |error| <= deadband counts as zero error */
    double i_decay_per_s; /* inside the deadband the integral decays as exp(-k t); 0 = off */
    double rate_w_per_s;  /* max output change per second; 0 = unlimited */
    double out_min_w;     /* output bounds, out_min_w <= out_max_w */
    double out_max_w;
    double quantum_w;         /* output resolution (register LSB); 0 = none */
    double flip_hysteresis_w; /* see pid_step */
};

struct pid {
    struct pid_cfg cfg;
    double integral_w; /* the I term itself (already multiplied by ki) */
    double ff_w;       /* the feed-forward of the last step (0 without) */
    double out_w;      /* the last output */
    double prev_meas;  /* for the derivative */
    int last_sign;     /* sign of the last non-zero output: -1, 0, +1 */
    int has_prev;      /* prev_meas and last_ms are valid */
    int64_t last_ms;
    /* The terms of the last step, for DecisionMetrics. */
    double error_w, p_w, i_w, d_w, unclamped_w; /* unclamped = ff + P + I + D */
    int saturated;                              /* the last output was limited by bounds or rate */
};

/* Copies cfg and resets the state. Returns 0, or -EINVAL for a non-finite or negative gain,
 * out_min_w > out_max_w, or an output range that does not contain 0. */
int pid_init(struct pid *p, const struct pid_cfg *cfg);

/* Forgets history (integral, last output, derivative memory); the next step starts from 0. */
void pid_reset(struct pid *p);

/* Bumpless start: the next step continues from out_w (last output and integral), e.g. what
 * the device was last given before a restart. Non-finite out_w is ignored. With a
 * feed-forward ff_w about to be applied, the integral is pre-loaded with out_w - ff_w so that
 * ff + I continues from out_w (pid_preset is pid_preset_ff with ff_w 0). */
void pid_preset(struct pid *p, double out_w);
void pid_preset_ff(struct pid *p, double out_w, double ff_w);

/* Tells the controller what was actually applied (a downstream limit may have cut its last
 * output). When that differs from the last output by more than tolerance_w, the next rate
 * limit starts from applied_w and the integral is pulled back to within [0, applied_w - ff]
 * (or [applied_w - ff, 0]; ff the last step's feed-forward) so that it does not wind up
 * behind a limit the controller cannot see.
 * Non-finite applied_w is ignored. */
void pid_track(struct pid *p, double applied_w, double tolerance_w);

/* One step at now_ms: error = setpoint - measurement, the output rises to raise the
 * measurement (a reverse-acting plant negates both inputs). Order: deadband, P, I (with
 * decay in the deadband, conditional integration while saturated), D on the measurement,
 * bounds, rate limit against the last output, sign hysteresis (an output of the opposite sign
 * to the last non-zero output is held at 0 until it exceeds flip_hysteresis_w), quantisation.
 * The first step (or a step with now_ms <= the last) has dt = 0: no I, no D, and with a rate
 * limit no change. Non-finite inputs return the last output unchanged. Returns the output. */
double pid_step(struct pid *p, double setpoint, double measurement, int64_t now_ms);

/* pid_step with a feed-forward ff_w added to P + I + D before the bounds, the rate limit and
 * the rest: the output is ff + P + I + D, the integral is kept inside the bounds minus ff, and
 * the anti-windup sees the whole output. A non-finite ff_w counts as 0. */
double pid_step_ff(struct pid *p, double setpoint, double measurement, double ff_w, int64_t now_ms);

#endif
