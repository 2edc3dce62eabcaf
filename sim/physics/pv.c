/* pv: a PV array behind its inverter (see pv.h; equations and constants in docs/physics.md).
 *
 * The array's available power follows irradiance and cell temperature (NOCT model); the
 * inverter clips it to its AC rating and to the curtailment limit. The limit is commanded in
 * percent of the AC rating (SunSpec WMaxLimPct) and moves through the response model in watts,
 * so latency and ramp apply to curtailment the way they do in the field. Outside RUNNING
 * (stopped, starting, tripped) the inverter produces nothing, and that is not curtailment. */
#include "sim/physics/pv.h"

#include <math.h>
#include <string.h>

/* Standard test conditions: 1000 W/m^2 at 25 degC cell temperature (IEC 61215). The NOCT
 * reference is 800 W/m^2 at 20 degC ambient (IEC 61215 / EN 50530). */
#define STC_W_M2   1000.0
#define STC_CELL_C 25.0
#define NOCT_W_M2  800.0
#define NOCT_AMB_C 20.0

static double rated_w(const struct pv *v)
{
    return v->p.ac_max_w > 0.0 ? v->p.ac_max_w : v->p.peak_w;
}

void pv_init(struct pv *v, const struct pv_params *p)
{
    memset(v, 0, sizeof *v);
    v->p = *p;
    v->limit_pct = 100.0;
    v->cell_temp_c = p->temp_ambient_c;
    response_init(&v->resp, &p->response, rated_w(v));
    opstate_init(&v->op, OPSTATE_RUNNING, 0);
}

void pv_opcommand(struct pv *v, int64_t now_ms, enum opstate_cmd cmd)
{
    opstate_command(&v->op, cmd);
    opstate_advance(&v->op, &v->p.op, now_ms, 1, v->fault);
}

void pv_command_limit(struct pv *v, int64_t now_ms, double limit_pct)
{
    if (limit_pct < 0.0)
        limit_pct = 0.0;
    if (limit_pct > 100.0)
        limit_pct = 100.0;
    v->limit_pct = limit_pct;
    response_command(&v->resp, now_ms, limit_pct / 100.0 * rated_w(v));
}

void pv_step(struct pv *v, int64_t now_ms, int64_t dt_ms)
{
    double dt_h = (double)dt_ms / 3600000.0;
    opstate_advance(&v->op, &v->p.op, now_ms, 1, v->fault);
    double g = v->p.irradiance ? profile_value(v->p.irradiance, now_ms) : 0.0;
    if (!(g > 0.0))
        g = 0.0;
    v->irradiance_w_m2 = g;
    v->cell_temp_c = v->p.temp_ambient_c + (v->p.noct_c - NOCT_AMB_C) / NOCT_W_M2 * g;

    /* A recorded power is what the inverter could deliver: no array model applies. */
    double avail = v->p.power ? profile_value(v->p.power, now_ms)
                              : v->p.peak_w * g / STC_W_M2 *
                                    (1.0 + v->p.gamma_per_k * (v->cell_temp_c - STC_CELL_C)) *
                                    v->p.system_derate;
    if (avail > rated_w(v))
        avail = rated_w(v);
    if (!(avail > 0.0))
        avail = 0.0;
    v->available_w = avail;

    double limit = response_step(&v->resp, now_ms, dt_ms);
    double p = avail < limit ? avail : limit;
    if (p < 0.0)
        p = 0.0;
    v->curtailed_wh += (avail - p) * dt_h;
    if (!opstate_running(&v->op))
        p = 0.0; /* tripped or stopped is not curtailment: it is not booked as curtailed */
    v->power_w = p;
    v->energy_wh += p * dt_h;
}

void pv_reset(struct pv *v)
{
    v->limit_pct = 100.0;
    v->fault = 0;
    v->op.enabled = 1;
    response_reset(&v->resp, rated_w(v));
}
