/* kpi: see kpi.h.
 *
 * Everything here is a pure function of what the runner feeds in, in the order it feeds it:
 * no clock, no randomness, sums in tick order. Energies are integrated per step as power x
 * step length, which is exact for the simulator's piecewise-constant powers. Import, export
 * and their prices are metered per site (each site has its own connection point); peaks are
 * taken over the sum of the sites, the load the scenario puts on the grid as a whole. */
#include "reports/kpi.h"
#include "reports/optimum.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/control/procimg.h"

#define WH_PER_W_MS (1.0 / 3600000.0)
#define WINDOW_MS   (15 * 60 * 1000) /* the billing interval of demand charges (EU/US norm) */
#define CLAMP_SLOTS (PROCIMG_MAX_DEVICES + 1) /* + the site-level slot (DECISION_SITE) */

/* the clamp reasons of one asset in one cycle are a bit set */
_Static_assert(DR_COUNT <= 32, "interlock reasons must fit a uint32_t mask");

#define INTERLOCK(reason, n)                                                                       \
    [KPI_INTERLOCK_FIRST + (reason)] = {"interlock_" n, "count", 0, KPI_LOWER,                     \
                                        "activations of the `" n "` interlock: cycles where "      \
                                        "safety clamped an asset for this reason and had not "     \
                                        "in the asset's previous cycle (docs/safety.md)"}

static const struct kpi_def table[KPI_COUNT] = {
    [KPI_ENERGY_IMPORT_KWH] = {"energy_import_kwh", "kWh", 3, KPI_LOWER,
                               "sum over sites and steps of max(grid_w, 0) x dt"},
    [KPI_ENERGY_EXPORT_KWH] = {"energy_export_kwh", "kWh", 3, KPI_NEUTRAL,
                               "sum over sites and steps of max(-grid_w, 0) x dt"},
    [KPI_PV_ENERGY_KWH] = {"pv_energy_kwh", "kWh", 3, KPI_HIGHER,
                           "sum of pv_w x dt (after curtailment)"},
    [KPI_CONSUMPTION_KWH] = {"consumption_kwh", "kWh", 3, KPI_NEUTRAL,
                             "sum of (load_w + evse_w + boiler_w) x dt"},
    [KPI_PRICES_KNOWN] = {"prices_known", "flag", 0, KPI_NEUTRAL,
                          "1 when at least one site names an import_price or export_price "
                          "profile; 0 means every cost KPI is 0 because there is no price"},
    [KPI_ENERGY_COST] = {"energy_cost", "currency", 4, KPI_LOWER,
                         "sum over sites and steps of max(grid_w, 0) x dt x import_price(t), "
                         "t the step's start; 0 for a site without import_price"},
    [KPI_EXPORT_REVENUE] = {"export_revenue", "currency", 4, KPI_HIGHER,
                            "sum of max(-grid_w, 0) x dt x export_price(t); 0 without "
                            "export_price"},
    [KPI_NET_COST] = {"net_cost", "currency", 4, KPI_LOWER, "energy_cost - export_revenue"},
    [KPI_PEAK_IMPORT_KW] = {"peak_import_kw", "kW", 3, KPI_LOWER,
                            "max over steps of max(sum of the sites' grid_w, 0)"},
    [KPI_PEAK_IMPORT_15M_KW] = {"peak_import_15m_kw", "kW", 3, KPI_LOWER,
                                "max over 15-minute windows aligned to the scenario start of the "
                                "imported energy in the window / the window's length (a last, "
                                "shorter window counts over its own length)"},
    [KPI_SELF_CONSUMPTION_RATIO] = {"self_consumption_ratio", "1", 4, KPI_HIGHER,
                                    "1 - energy_export_kwh / pv_energy_kwh, in [0, 1]; 0 "
                                    "without PV energy"},
    [KPI_SELF_SUFFICIENCY_RATIO] = {"self_sufficiency_ratio", "1", 4, KPI_HIGHER,
                                    "1 - energy_import_kwh / consumption_kwh, in [0, 1]; 0 "
                                    "without consumption"},
    [KPI_BATTERY_CHARGE_KWH] = {"battery_charge_kwh", "kWh", 3, KPI_NEUTRAL,
                                "sum of max(-battery_w, 0) x dt (AC side)"},
    [KPI_BATTERY_DISCHARGE_KWH] = {"battery_discharge_kwh", "kWh", 3, KPI_NEUTRAL,
                                   "sum of max(battery_w, 0) x dt (AC side)"},
    [KPI_BATTERY_THROUGHPUT_KWH] = {"battery_throughput_kwh", "kWh", 3, KPI_LOWER,
                                    "battery_charge_kwh + battery_discharge_kwh"},
    [KPI_BATTERY_EQUIVALENT_CYCLES] = {"battery_equivalent_cycles", "cycles", 4, KPI_LOWER,
                                       "battery_throughput_kwh / (2 x the total battery "
                                       "capacity); 0 without batteries"},
    [KPI_SOC_MIN] = {"soc_min", "1", 6, KPI_NEUTRAL,
                     "lowest SoC of any battery after any step; null without batteries"},
    [KPI_SOC_MAX] = {"soc_max", "1", 6, KPI_NEUTRAL,
                     "highest SoC of any battery after any step; null without batteries"},
    [KPI_SOC_OUTSIDE_LIMITS_S] = {"soc_outside_limits_s", "s", 3, KPI_LOWER,
                                  "sum over sites of the time some battery's SoC was below the "
                                  "gateway's safety.soc_floor or above safety.soc_ceiling"},
    INTERLOCK(DR_NONFINITE, "nonfinite"),
    INTERLOCK(DR_OFFLINE, "offline"),
    INTERLOCK(DR_STALE, "stale"),
    INTERLOCK(DR_SOC_INVALID, "soc_invalid"),
    INTERLOCK(DR_POWER_DEVICE, "power_device"),
    INTERLOCK(DR_POWER_CONFIG, "power_config"),
    INTERLOCK(DR_CURRENT, "current"),
    INTERLOCK(DR_SOC_FLOOR, "soc_floor"),
    INTERLOCK(DR_SOC_CEILING, "soc_ceiling"),
    INTERLOCK(DR_TEMP_STOP, "temp_stop"),
    INTERLOCK(DR_TEMP_DERATE, "temp_derate"),
    INTERLOCK(DR_TEMP_COLD, "temp_cold"),
    INTERLOCK(DR_RATING, "rating"),
    INTERLOCK(DR_RAMP, "ramp"),
    INTERLOCK(DR_GRID_IMPORT, "grid_import"),
    INTERLOCK(DR_GRID_EXPORT, "grid_export"),
    [KPI_INTERLOCK_TOTAL] = {"interlock_total", "count", 0, KPI_LOWER,
                             "the sum of every interlock_* activation count"},
    [KPI_SETPOINT_WRITES] = {"setpoint_writes", "count", 0, KPI_LOWER,
                             "setpoint (and release) writes the gateways sent"},
    [KPI_GATEWAY_CYCLES] = {"gateway_cycles", "count", 0, KPI_NEUTRAL,
                            "gateway control cycles, all sites"},
    [KPI_MODBUS_REQUESTS] = {"modbus_requests", "count", 0, KPI_NEUTRAL,
                             "register reads and writes with valid arguments (bus_stats.requests)"},
    [KPI_MODBUS_TIMEOUTS] = {"modbus_timeouts", "count", 0, KPI_LOWER,
                             "attempts without a reply in time, retries included"},
    [KPI_MODBUS_EXCEPTIONS] = {"modbus_exceptions", "count", 0, KPI_LOWER,
                               "requests answered with a Modbus exception"},
    [KPI_MODBUS_CONN_ERRORS] = {"modbus_conn_errors", "count", 0, KPI_LOWER,
                                "attempts that could not connect or lost the connection"},
    [KPI_MODBUS_PROTO_ERRORS] = {"modbus_proto_errors", "count", 0, KPI_LOWER,
                                 "malformed or mismatched replies"},
    [KPI_MODBUS_RETRIES] = {"modbus_retries", "count", 0, KPI_LOWER,
                            "attempts after the first one of a request"},
    [KPI_MODBUS_BREAKER_OPENS] = {"modbus_breaker_opens", "count", 0, KPI_LOWER,
                                  "circuit breakers that opened (per unit)"},
    [KPI_MODBUS_BREAKER_REJECTS] = {"modbus_breaker_rejects", "count", 0, KPI_LOWER,
                                    "requests refused by an open breaker (nothing sent)"},
    [KPI_EV_ENERGY_DELIVERED_KWH] = {"ev_energy_delivered_kwh", "kWh", 3, KPI_HIGHER,
                                     "energy the chargers delivered to cars"},
    [KPI_EV_ENERGY_REQUESTED_KWH] = {"ev_energy_requested_kwh", "kWh", 3, KPI_NEUTRAL,
                                     "sum of energy_kwh of the sessions that arrive during the "
                                     "run"},
    [KPI_EV_SHORTFALL_KWH] = {"ev_shortfall_kwh", "kWh", 3, KPI_LOWER,
                              "energy wanted but not delivered, summed over the sessions that "
                              "ended (departed) during the run"},
    [KPI_EV_SESSIONS_COMPLETED] = {"ev_sessions_completed", "count", 0, KPI_NEUTRAL,
                                   "sessions that ended (the car departed) during the run"},
    [KPI_EV_SESSIONS_FULL] = {"ev_sessions_full", "count", 0, KPI_HIGHER,
                              "ended sessions whose energy need was met (within 1 Wh)"},
    [KPI_BOILER_ENERGY_KWH] = {"boiler_energy_kwh", "kWh", 3, KPI_NEUTRAL,
                               "electric energy the boilers drew"},
    [KPI_BOILER_BELOW_MIN_S] = {"boiler_below_min_s", "s", 3, KPI_LOWER,
                                "sum over boilers of the time the tank was below its comfort "
                                "minimum temp_min_c (boiler comfort)"},
    [KPI_OUTAGE_S] = {"outage_s", "s", 3, KPI_NEUTRAL,
                      "sum over sites of the time islanded by a grid_outage event"},
    [KPI_UNSERVED_ENERGY_KWH] = {"unserved_energy_kwh", "kWh", 3, KPI_LOWER,
                                 "sum of unserved_w x dt: demand (load + evse + boiler) the "
                                 "islanded sites' batteries and PV could not supply (load shed); "
                                 "0 without outages"},
    [KPI_ISLAND_SUPPLY_PCT] = {"island_supply_pct", "%", 2, KPI_HIGHER,
                               "100 x (1 - unserved energy / demand energy), both summed over "
                               "the islanded steps; null without an outage or demand in one"},
    [KPI_CHECK_FAILURES] = {"check_failures", "count", 0, KPI_LOWER,
                            "steps where an invariant (balance, SoC range) failed"},
    [KPI_VIEW_MISMATCHES] = {"view_mismatches", "count", 0, KPI_LOWER,
                             "registers where the gateway's view differed from the simulator"},
    [KPI_STEP_SIZE_W] = {"step_size_w", "W", 1, KPI_NEUTRAL,
                         "the largest change of the sites' summed uncontrolled net load (load + "
                         "evse + boiler - pv) from one step to the next, at least 100 W; null "
                         "without one. The step_* KPIs describe how the grid answers it"},
    [KPI_STEP_SETTLING_S] = {"step_settling_s", "s", 1, KPI_LOWER,
                             "from the step until the summed grid power stays within +/- "
                             "max(5 % of the step, 50 W) up to the next change of more than half "
                             "the step (or the end of the run)"},
    [KPI_STEP_OVERSHOOT_PCT] = {"step_overshoot_pct", "%", 2, KPI_LOWER,
                                "the largest grid excursion opposite to the step after it, as a "
                                "percentage of the step (a load step up that ends in export)"},
    [KPI_FCR_ACTIVATION_S] = {"fcr_activation_s", "s", 1, KPI_LOWER,
                              "FCR (droop) activation time against the gateway's grid_services "
                              "fcr_* parameters: an excursion is a run of steps with the grid "
                              "frequency outside nominal +/- fcr_deadband_hz on one side; it "
                              "counts once the droop requirement R = fcr_power_w x min((|df| - "
                              "deadband) / (fcr_full_hz - deadband), 1) reaches 50 % of "
                              "fcr_power_w, and from that step the time until the battery power's "
                              "change since the step before the excursion first delivers 90 % of "
                              "R in the required direction (steps' starts, so at the step's "
                              "resolution). A response that never comes counts as the time from "
                              "then to the excursion's end (at least that late). Worst over "
                              "excursions and sites; null without a qualifying excursion. "
                              "ENTSO-E FCR: full activation within 30 s"},
    [KPI_FCR_ENERGY_PCT] = {"fcr_energy_pct", "%", 2, KPI_HIGHER,
                            "100 x the droop energy delivered / required over every step outside "
                            "the deadband: each step's delivery is the battery power's change "
                            "since the excursion began, in the required direction, capped at R "
                            "(lateness is not made up by overshoot); null without such a step"},
    [KPI_FFR_ACTIVATION_S] = {"ffr_activation_s", "s", 1, KPI_LOWER,
                              "FFR activation time against the gateway's grid_services ffr_* "
                              "parameters: a trigger is a step with the grid frequency at or "
                              "below ffr_trigger_hz while the reserve is armed (never triggered, "
                              "or ffr_duration + ffr_rearm since the last trigger); the time from "
                              "it until the battery discharges at least 90 % of ffr_power_w more "
                              "than before the disturbance (the step before the trigger, or before "
                              "the FCR excursion it belongs to: a droop already under way counts "
                              "toward the change rather than raising the bar). Never within "
                              "ffr_duration counts as ffr_duration. Worst over triggers and sites; "
                              "null without a trigger. Nordic FFR: full activation within 1.3 s at "
                              "49.7 Hz"},
    [KPI_FFR_SUPPORT_PCT] = {"ffr_support_pct", "%", 2, KPI_HIGHER,
                             "FFR support against the same contract: the share of each trigger's "
                             "support window (from activation to ffr_duration after the trigger) "
                             "during which the battery held at least 90 % of ffr_power_w more "
                             "discharge than before the disturbance; 0 for a trigger never "
                             "activated. Lowest over triggers and sites; null without a trigger"},
    [KPI_OPTIMAL_SAVINGS] = {"optimal_savings", "currency", 4, KPI_NEUTRAL,
                             "what a controller with perfect knowledge of the whole run could save "
                             "with the same batteries: the idle-battery cost minus the minimum "
                             "cost of a linear program (GLPK) over 15-minute interval means of the "
                             "net load and prices, with the batteries' limits, efficiencies, the "
                             "gateway's SoC window and an end SoC no lower than the start "
                             "(docs/kpis.md, reports/optimum.h). Solved per site with its own net "
                             "load, prices and batteries and summed over the sites (energy cost "
                             "is separable: nothing is shared); a site without battery or price "
                             "adds 0. Null when no site has both, when a site has more than 8 "
                             "batteries or cannot be solved, or over 35136 intervals or 4194304 "
                             "sites x intervals (events.log says which)"},
    [KPI_OPTIMAL_PEAK_15M_KW] = {"optimal_peak_15m_kw", "kW", 3, KPI_NEUTRAL,
                                 "the lowest 15-minute import peak of the sites' sum (as "
                                 "peak_import_15m_kw) the same batteries could hold with perfect "
                                 "foresight: one linear program over the summed net load with "
                                 "every site's batteries, minimising the peak (the fleet's peak "
                                 "is not the sum of the sites' own); null as optimal_savings, "
                                 "and when the sites have more than 8 batteries in all"},
    [KPI_END_ENERGY_VALUE] = {"end_energy_value", "currency", 4, KPI_NEUTRAL,
                              "the batteries' stored energy at the end of the run minus at its "
                              "start, valued at the run's lowest 15-minute import price: a "
                              "surplus times the discharge efficiency, a deficit over the charge "
                              "efficiency (what refilling it would cost at best); per site with "
                              "its own batteries and lowest price, summed over the sites that "
                              "optimal_savings solves; null as optimal_savings"},
    [KPI_STEP_RESIDUAL_RMS_W] = {"step_residual_rms_w", "W", 1, KPI_LOWER,
                                 "RMS of the summed grid power from 5 minutes after the step to "
                                 "the end of its window: what is left once the loop has settled "
                                 "(large when it oscillates)"},
    [KPI_COST_REDUCTION_PCT] = {"cost_reduction_pct", "%", 3, KPI_HIGHER,
                                "100 x (baseline net_cost - net_cost) / |baseline net_cost|; 0 "
                                "when the baseline's net_cost is 0"},
    [KPI_PEAK_REDUCTION_PCT] = {"peak_reduction_pct", "%", 3, KPI_HIGHER,
                                "100 x (baseline peak_import_15m_kw - peak_import_15m_kw) / "
                                "baseline peak_import_15m_kw; 0 when the baseline's is 0"},
    [KPI_PEAK_INSTANT_REDUCTION_PCT] = {"peak_instant_reduction_pct", "%", 3, KPI_HIGHER,
                                        "the same for peak_import_kw"},
    [KPI_IMPORT_REDUCTION_KWH] = {"import_reduction_kwh", "kWh", 3, KPI_HIGHER,
                                  "baseline energy_import_kwh - energy_import_kwh"},
    [KPI_SELF_CONSUMPTION_GAIN] = {"self_consumption_gain", "1", 4, KPI_HIGHER,
                                   "self_consumption_ratio - baseline self_consumption_ratio"},
    [KPI_SELF_SUFFICIENCY_GAIN] = {"self_sufficiency_gain", "1", 4, KPI_HIGHER,
                                   "self_sufficiency_ratio - baseline self_sufficiency_ratio"},
    [KPI_SAVINGS_VS_OPTIMAL_PCT] =
        {"savings_vs_optimal_pct", "%", 2, KPI_HIGHER,
         "100 x ((baseline net_cost - baseline end_energy_value) - "
         "(net_cost - end_energy_value)) / optimal_savings: the share of "
         "the perfect-foresight savings the strategy reached, with the "
         "stored energy it used up (or left) valued like the optimum's "
         "end (an end_energy_value that is null counts 0); "
         "100 when nothing could be saved and nothing was lost; null "
         "without optimal_savings"},
    [KPI_UNSERVED_REDUCTION_KWH] = {"unserved_reduction_kwh", "kWh", 3, KPI_HIGHER,
                                    "baseline unserved_energy_kwh - unserved_energy_kwh: the load "
                                    "the strategy kept supplied through the outages"},
};

const struct kpi_def *kpi_def(int id)
{
    return id >= 0 && id < KPI_COUNT ? &table[id] : NULL;
}

int kpi_find(const char *name)
{
    for (int i = 0; i < KPI_COUNT; i++)
        if (!strcmp(table[i].name, name))
            return i;
    return -1;
}

/* ---- frequency response (KPI_FCR_*, KPI_FFR_*) ---------------------------------------------- */

/* An FCR excursion counts for the activation time once it asks for this share of fcr_power_w
 * (a small excursion's response is lost in the noise), and a response counts as activated at
 * this share of what is asked: the 90 % criterion of step-response tests (ENTSO-E's FCR
 * prequalification measures full activation; Nordic FFR likewise) with room for the ramp's
 * and the quantisation's last watts. */
#define FR_QUALIFY 0.5
#define FR_REACHED 0.9

/* One site's frequency response, measured against its requirement. Times are the starts of the
 * site's steps, counted from the run's start. */
struct fr_site {
    struct kpi_freq_params p;
    int on; /* a requirement was set */
    int64_t t_ms;
    double prev_bat_w; /* battery_w of the previous step */
    int have_prev;
    int fcr_sign, fcr_done; /* +1 under-frequency (discharge), -1 over, 0 no open excursion */
    double fcr_p0_w;        /* battery_w before the excursion */
    int64_t fcr_q_ms;       /* the step it qualified, -1 before */
    double fcr_worst_s, fcr_req_wh, fcr_del_wh;
    int ffr_seen, ffr_open, ffr_done;
    int64_t ffr_t_ms; /* the last trigger */
    double ffr_p0_w, ffr_worst_s;
    int64_t ffr_win_ms, ffr_held_ms; /* the support window since activation, and held in it */
    double ffr_support_worst;
};

static void fr_fcr_close(struct fr_site *f, int64_t end_ms)
{
    if (f->fcr_sign && f->fcr_q_ms >= 0 && !f->fcr_done)
        f->fcr_worst_s = fmax(f->fcr_worst_s, (end_ms - f->fcr_q_ms) / 1000.0);
    f->fcr_sign = 0;
}

static void fr_ffr_close(struct fr_site *f, int64_t end_ms)
{
    if (f->ffr_open && !f->ffr_done)
        f->ffr_worst_s = fmax(f->ffr_worst_s, (end_ms - f->ffr_t_ms) / 1000.0);
    if (f->ffr_open) /* never activated: nothing of the window was held */
        f->ffr_support_worst =
            fmin(f->ffr_support_worst, !f->ffr_done ? 0.0
                                       : f->ffr_win_ms > 0
                                           ? 100.0 * (double)f->ffr_held_ms / (double)f->ffr_win_ms
                                           : 100.0);
    f->ffr_open = 0;
}

static void fr_fcr(struct fr_site *f, double freq_hz, double bat_w, double prev_w, int64_t t,
                   int64_t dt_ms)
{
    const struct kpi_freq_params *p = &f->p;
    double df = freq_hz - p->nominal_hz, span = p->fcr_full_hz - p->fcr_deadband_hz;
    double mag = fabs(df) - p->fcr_deadband_hz;
    mag = span > 0 ? mag / span : mag > 0;
    int sign = isfinite(freq_hz) && mag > 0 ? (df < 0 ? 1 : -1) : 0;
    if (sign != f->fcr_sign) {
        /* straight from one side to the other: the response is still measured from the power
         * before any of it */
        double p0 = f->fcr_sign ? f->fcr_p0_w : prev_w;
        fr_fcr_close(f, t);
        f->fcr_sign = sign;
        f->fcr_p0_w = p0;
        f->fcr_q_ms = -1;
        f->fcr_done = 0;
    }
    if (!sign)
        return;
    double req = p->fcr_power_w * fmin(mag, 1), got = sign * (bat_w - f->fcr_p0_w);
    f->fcr_req_wh += req * (double)dt_ms * WH_PER_W_MS;
    f->fcr_del_wh += fmin(fmax(got, 0), req) * (double)dt_ms * WH_PER_W_MS;
    if (f->fcr_q_ms < 0 && req >= FR_QUALIFY * p->fcr_power_w)
        f->fcr_q_ms = t;
    if (f->fcr_q_ms >= 0 && !f->fcr_done && got >= FR_REACHED * req) {
        f->fcr_done = 1;
        f->fcr_worst_s = fmax(f->fcr_worst_s, (t - f->fcr_q_ms) / 1000.0);
    }
}

static void fr_ffr(struct fr_site *f, double freq_hz, double bat_w, double prev_w, int64_t t,
                   int64_t dt_ms)
{
    const struct kpi_freq_params *p = &f->p;
    if (f->ffr_open && t >= f->ffr_t_ms + p->ffr_duration_ms)
        fr_ffr_close(f, f->ffr_t_ms + p->ffr_duration_ms);
    int armed = !f->ffr_seen || t >= f->ffr_t_ms + p->ffr_duration_ms + p->ffr_rearm_ms;
    if (armed && freq_hz <= p->ffr_trigger_hz) { /* NaN compares false */
        f->ffr_seen = f->ffr_open = 1;
        f->ffr_done = 0;
        f->ffr_t_ms = t;
        f->ffr_win_ms = f->ffr_held_ms = 0;
        /* from the power before the disturbance: an FCR droop already under way when the
         * frequency reaches the trigger is part of the change, not a new baseline */
        f->ffr_p0_w = f->fcr_sign > 0 ? f->fcr_p0_w : prev_w;
    }
    int held = bat_w - f->ffr_p0_w >= FR_REACHED * p->ffr_power_w;
    if (f->ffr_open && !f->ffr_done && held) {
        f->ffr_done = 1;
        f->ffr_worst_s = fmax(f->ffr_worst_s, (t - f->ffr_t_ms) / 1000.0);
    }
    if (f->ffr_open && f->ffr_done && t < f->ffr_t_ms + p->ffr_duration_ms) {
        f->ffr_win_ms += dt_ms; /* the support window: activation to ffr_duration */
        f->ffr_held_ms += held ? dt_ms : 0;
    }
}

static void fr_step(struct fr_site *f, const struct kpi_sample *s, int64_t dt_ms)
{
    int64_t t = f->t_ms;
    double prev = f->have_prev ? f->prev_bat_w : s->battery_w;
    f->t_ms += dt_ms;
    f->prev_bat_w = s->battery_w;
    f->have_prev = 1;
    if (!f->on)
        return;
    if (f->p.fcr_power_w > 0)
        fr_fcr(f, s->freq_hz, s->battery_w, prev, t, dt_ms);
    if (f->p.ffr_power_w > 0)
        fr_ffr(f, s->freq_hz, s->battery_w, prev, t, dt_ms);
}

/* ---- the accumulator ------------------------------------------------------------------------- */

/* What the optimum needs of a site beyond its intervals. */
struct opt_site {
    double soc_last; /* capacity-weighted SoC after the last step (NaN: none) */
    int prices_seen; /* some step had an import or export price */
};

struct kpi_acc {
    size_t n_sites;
    double soc_floor, soc_ceiling;
    double v[KPI_COUNT]; /* integrals kept in Wh and W; converted in kpi_acc_result */
    int have_soc;
    double tick_grid_w; /* sum over sites of this tick */
    double win_import_wh;
    int64_t win_ms; /* covered length of the current 15-minute window */
    double last_win_w;
    double peak_win_w;
    double capacity_wh;
    /* step response (KPI_STEP_*) */
    double tick_net_w, prev_net_w;
    int have_prev_net, step_open;
    double step_w, step_overshoot_w, step_sq_w2;
    int64_t step_t_ms, step_last_out_ms, step_sq_ms;
    /* 15-minute interval sums for the optimum, per site and interval: n_iv rows of n_sites,
     * row-major (interval k, site i at k * n_sites + i), so a new interval appends rows */
    size_t n_iv, cap_iv;
    double *iv_net_wh, *iv_imp, *iv_exp; /* sums over the interval: Wh, price x ms */
    int64_t *iv_ms;    /* per interval: its covered length (the sites step together) */
    int64_t tick_t_ms; /* the start of the current step: the end of the last tick */
    int iv_dropped;    /* -E2BIG or -ENOMEM: past the store's bound, nothing kept */
    struct opt_site *os;
    /* the optimum: sums over the sites solved; kpi_acc_result decides what is null */
    size_t opt_sites, end_sites;
    int opt_failed;
    double opt_savings, end_value, opt_peak_w;
    uint32_t (*clamped)[CLAMP_SLOTS]; /* per site: reasons clamped in the previous cycle */
    struct fr_site *fr;               /* per site: frequency response */
    double island_demand_wh;          /* demand during islanded steps (KPI_ISLAND_SUPPLY_PCT) */
};

struct kpi_acc *kpi_acc_new(size_t n_sites, double soc_floor, double soc_ceiling)
{
    struct kpi_acc *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->clamped = calloc(n_sites ? n_sites : 1, sizeof *a->clamped);
    a->fr = calloc(n_sites ? n_sites : 1, sizeof *a->fr);
    a->os = calloc(n_sites ? n_sites : 1, sizeof *a->os);
    if (!a->clamped || !a->fr || !a->os) {
        free(a->clamped);
        free(a->fr);
        free(a->os);
        free(a);
        return NULL;
    }
    for (size_t i = 0; i < n_sites; i++)
        a->os[i].soc_last = NAN;
    a->n_sites = n_sites;
    a->soc_floor = soc_floor;
    a->soc_ceiling = soc_ceiling;
    a->v[KPI_SOC_MIN] = NAN;
    a->v[KPI_SOC_MAX] = NAN;
    a->opt_peak_w = NAN;
    return a;
}

void kpi_acc_free(struct kpi_acc *a)
{
    if (!a)
        return;
    free(a->clamped);
    free(a->fr);
    free(a->os);
    free(a->iv_net_wh);
    free(a->iv_imp);
    free(a->iv_exp);
    free(a->iv_ms);
    free(a);
}

void kpi_acc_freq_params(struct kpi_acc *a, size_t site, const struct kpi_freq_params *p)
{
    if (site >= a->n_sites)
        return;
    struct fr_site *f = &a->fr[site];
    f->p = *p;
    f->on = 1;
    f->fcr_worst_s = NAN;
    f->ffr_worst_s = NAN;
    f->ffr_support_worst = NAN;
}

/* ---- the interval store of the optimum ------------------------------------------------------- */

/* Makes room for interval k, zeroed. The store grows by doubling up to its bound: no more
 * intervals than the optimum accepts, no more than KPI_OPTIMUM_MAX_ENTRIES sites x intervals
 * (a year of a fleet would take gigabytes). Past the bound, or out of memory, the store is
 * dropped for the rest of the run and the optimum says why (kpi_acc_optimum). */
static int iv_grow(struct kpi_acc *a, size_t k)
{
    if (a->iv_dropped)
        return a->iv_dropped;
    size_t sites = a->n_sites ? a->n_sites : 1;
    size_t max = KPI_OPTIMUM_MAX_ENTRIES / sites;
    if (max > OPTIMUM_MAX_INTERVALS)
        max = OPTIMUM_MAX_INTERVALS;
    int rc = -E2BIG;
    if (k >= max)
        goto drop;
    if (k >= a->cap_iv) {
        size_t cap = a->cap_iv ? a->cap_iv * 2 : 128;
        while (cap <= k)
            cap *= 2;
        if (cap > max)
            cap = max;
        rc = -ENOMEM;
        double *n1 = realloc(a->iv_net_wh, cap * sites * sizeof *n1);
        if (!n1)
            goto drop;
        a->iv_net_wh = n1;
        double *n2 = realloc(a->iv_imp, cap * sites * sizeof *n2);
        if (!n2)
            goto drop;
        a->iv_imp = n2;
        double *n3 = realloc(a->iv_exp, cap * sites * sizeof *n3);
        if (!n3)
            goto drop;
        a->iv_exp = n3;
        int64_t *n4 = realloc(a->iv_ms, cap * sizeof *n4);
        if (!n4)
            goto drop;
        a->iv_ms = n4;
        a->cap_iv = cap;
    }
    size_t from = a->n_iv * sites, to = (k + 1) * sites;
    memset(a->iv_net_wh + from, 0, (to - from) * sizeof *a->iv_net_wh);
    memset(a->iv_imp + from, 0, (to - from) * sizeof *a->iv_imp);
    memset(a->iv_exp + from, 0, (to - from) * sizeof *a->iv_exp);
    memset(a->iv_ms + a->n_iv, 0, (k + 1 - a->n_iv) * sizeof *a->iv_ms);
    a->n_iv = k + 1;
    return 0;
drop:
    free(a->iv_net_wh);
    free(a->iv_imp);
    free(a->iv_exp);
    free(a->iv_ms);
    a->iv_net_wh = a->iv_imp = a->iv_exp = NULL;
    a->iv_ms = NULL;
    a->n_iv = a->cap_iv = 0;
    a->iv_dropped = rc;
    return rc;
}

/* One site's step in its 15-minute interval: the one holding the step's start, as for the peak
 * windows. Summed per site in tick order, so a single site's sums are the same as they were
 * when only site 0 was kept (a run's digest covers kpis.json). */
static void interval_site(struct kpi_acc *a, size_t site, const struct kpi_sample *s, int64_t dt_ms)
{
    struct opt_site *o = &a->os[site];
    if (isfinite(s->soc_mean))
        o->soc_last = s->soc_mean;
    o->prices_seen |= !isnan(s->import_price) || !isnan(s->export_price);
    size_t k = (size_t)(a->tick_t_ms / WINDOW_MS);
    if (k >= a->n_iv && iv_grow(a, k) != 0)
        return;
    size_t i = k * a->n_sites + site;
    a->iv_net_wh[i] +=
        (s->load_w + s->evse_w + s->boiler_w - s->pv_w) * (double)dt_ms * WH_PER_W_MS;
    a->iv_imp[i] += (isnan(s->import_price) ? 0 : s->import_price) * (double)dt_ms;
    a->iv_exp[i] += (isnan(s->export_price) ? 0 : s->export_price) * (double)dt_ms;
}

void kpi_acc_site(struct kpi_acc *a, size_t site, const struct kpi_sample *s, int64_t dt_ms)
{
    if (site < a->n_sites) {
        fr_step(&a->fr[site], s, dt_ms);
        interval_site(a, site, s, dt_ms);
    }
    const double h = (double)dt_ms * WH_PER_W_MS; /* W -> Wh over this step */
    double imp = s->grid_w > 0 ? s->grid_w : 0, exp = s->grid_w < 0 ? -s->grid_w : 0;
    a->v[KPI_ENERGY_IMPORT_KWH] += imp * h;
    a->v[KPI_ENERGY_EXPORT_KWH] += exp * h;
    a->v[KPI_PV_ENERGY_KWH] += s->pv_w * h;
    a->v[KPI_CONSUMPTION_KWH] += (s->load_w + s->evse_w + s->boiler_w) * h;
    if (!isnan(s->import_price)) {
        a->v[KPI_PRICES_KNOWN] = 1;
        a->v[KPI_ENERGY_COST] += imp * h / 1000.0 * s->import_price;
    }
    if (!isnan(s->export_price)) {
        a->v[KPI_PRICES_KNOWN] = 1;
        a->v[KPI_EXPORT_REVENUE] += exp * h / 1000.0 * s->export_price;
    }
    if (s->battery_w < 0)
        a->v[KPI_BATTERY_CHARGE_KWH] += -s->battery_w * h;
    else
        a->v[KPI_BATTERY_DISCHARGE_KWH] += s->battery_w * h;
    if (!isnan(s->soc_lo)) {
        if (!a->have_soc || s->soc_lo < a->v[KPI_SOC_MIN])
            a->v[KPI_SOC_MIN] = s->soc_lo;
        if (!a->have_soc || s->soc_hi > a->v[KPI_SOC_MAX])
            a->v[KPI_SOC_MAX] = s->soc_hi;
        a->have_soc = 1;
        if (s->soc_lo < a->soc_floor || s->soc_hi > a->soc_ceiling)
            a->v[KPI_SOC_OUTSIDE_LIMITS_S] += dt_ms / 1000.0;
    }
    a->v[KPI_BOILER_BELOW_MIN_S] += s->boilers_below_min * (dt_ms / 1000.0);
    if (s->islanded) {
        a->v[KPI_OUTAGE_S] += dt_ms / 1000.0;
        a->v[KPI_UNSERVED_ENERGY_KWH] += s->unserved_w * h;
        a->island_demand_wh += (s->load_w + s->evse_w + s->boiler_w) * h;
    }
    a->tick_grid_w += s->grid_w;
    a->tick_net_w += s->load_w + s->evse_w + s->boiler_w - s->pv_w;
}

/* The step response, streamed: a new largest step restarts the measurement; a later change
 * of more than half of it ends the window (the loop is answering something else then). */
static void step_response(struct kpi_acc *a, int64_t t_ms, int64_t dt_ms)
{
    double grid = a->tick_grid_w, net = a->tick_net_w;
    if (a->have_prev_net) {
        double d = net - a->prev_net_w;
        if (fabs(d) >= 100 && fabs(d) > fabs(a->step_w)) {
            a->step_w = d;
            a->step_t_ms = t_ms - dt_ms;
            a->step_last_out_ms = a->step_t_ms;
            a->step_overshoot_w = 0;
            a->step_sq_w2 = 0;
            a->step_sq_ms = 0;
            a->step_open = 1;
        } else if (a->step_open && fabs(d) > fabs(a->step_w) / 2) {
            a->step_open = 0;
        }
    }
    a->prev_net_w = net;
    a->have_prev_net = 1;
    if (!a->step_open)
        return;
    double band = fmax(0.05 * fabs(a->step_w), 50.0);
    if (fabs(grid) > band)
        a->step_last_out_ms = t_ms;
    double opposite = a->step_w > 0 ? -grid : grid;
    if (opposite > a->step_overshoot_w)
        a->step_overshoot_w = opposite;
    if (t_ms - dt_ms >= a->step_t_ms + 5 * 60 * 1000) {
        a->step_sq_w2 += grid * grid * (double)dt_ms;
        a->step_sq_ms += dt_ms;
    }
}

static void close_window(struct kpi_acc *a)
{
    if (a->win_ms <= 0)
        return;
    a->last_win_w = a->win_import_wh / ((double)a->win_ms * WH_PER_W_MS);
    if (a->last_win_w > a->peak_win_w)
        a->peak_win_w = a->last_win_w;
    a->win_import_wh = 0;
    a->win_ms = 0;
}

void kpi_acc_tick_end(struct kpi_acc *a, int64_t t_ms, int64_t dt_ms)
{
    double imp = a->tick_grid_w > 0 ? a->tick_grid_w : 0;
    if (imp > a->v[KPI_PEAK_IMPORT_KW])
        a->v[KPI_PEAK_IMPORT_KW] = imp;
    a->win_import_wh += imp * (double)dt_ms * WH_PER_W_MS;
    a->win_ms += dt_ms;
    /* a step belongs to the window holding its start */
    if ((t_ms - dt_ms) / WINDOW_MS != t_ms / WINDOW_MS)
        close_window(a);
    step_response(a, t_ms, dt_ms);
    size_t k = (size_t)(a->tick_t_ms / WINDOW_MS);
    if (k < a->n_iv || iv_grow(a, k) == 0)
        a->iv_ms[k] += dt_ms;
    a->tick_t_ms = t_ms;
    a->tick_grid_w = 0;
    a->tick_net_w = 0;
}

/* ---- the perfect-foresight optimum ----------------------------------------------------------- */

/* Site `site`'s interval means (site SIZE_MAX: the sum of every site's net load, no prices). */
static void iv_means(const struct kpi_acc *a, size_t site, double *net, double *imp, double *exp_)
{
    for (size_t k = 0; k < a->n_iv; k++) {
        double ms = a->iv_ms[k] > 0 ? (double)a->iv_ms[k] : 1;
        const size_t row = k * a->n_sites;
        if (site == SIZE_MAX) {
            double wh = 0;
            for (size_t i = 0; i < a->n_sites; i++)
                wh += a->iv_net_wh[row + i];
            net[k] = wh / (ms * WH_PER_W_MS);
            continue;
        }
        net[k] = a->iv_net_wh[row + site] / (ms * WH_PER_W_MS);
        imp[k] = a->iv_imp[row + site] / ms;
        exp_[k] = a->iv_exp[row + site] / ms;
    }
}

/* KPI_END_ENERGY_VALUE of one site: the optimum must end with at least its start energy, a
 * strategy need not; valuing the difference at the site's cheapest import price of the run (a
 * refill cannot cost less, a surplus displaces at least that) makes the two comparable. NaN
 * when the site has no SoC to value. */
static double end_value(double soc_last, const struct optimum_battery *b, size_t nb,
                        const double *imp, size_t n)
{
    double cap = 0, e0 = 0, eta_c = 0, eta_d = 0, p_min = INFINITY;
    for (size_t k = 0; k < nb; k++) {
        cap += b[k].capacity_wh;
        e0 += b[k].soc_init * b[k].capacity_wh;
        eta_c += b[k].eta_charge * b[k].capacity_wh;
        eta_d += b[k].eta_discharge * b[k].capacity_wh;
    }
    for (size_t i = 0; i < n; i++)
        p_min = fmin(p_min, imp[i]);
    if (!(cap > 0) || !isfinite(soc_last) || !isfinite(p_min))
        return NAN;
    double d_wh = soc_last * cap - e0;
    return (d_wh > 0 ? d_wh * eta_d / cap : d_wh / (eta_c / cap)) * p_min / 1000.0;
}

static int opt_fail(struct kpi_acc *a, int rc)
{
    a->opt_failed = 1;
    return rc;
}

int kpi_acc_optimum(struct kpi_acc *a, size_t site, const struct optimum_battery *b,
                    size_t n_batteries, char *err, size_t errlen)
{
    if (a->opt_failed || site >= a->n_sites || n_batteries == 0 || !a->os[site].prices_seen)
        return 0; /* nothing to save here */
    if (n_batteries > OPTIMUM_MAX_BATTERIES) {
        snprintf(err, errlen, "optimum: %zu batteries at the site, at most %d", n_batteries,
                 OPTIMUM_MAX_BATTERIES);
        return opt_fail(a, -E2BIG);
    }
    if (a->iv_dropped == -E2BIG)
        snprintf(err, errlen,
                 "optimum: %zu sites x %lld 15-minute intervals, over %d intervals or %u "
                 "sites x intervals",
                 a->n_sites, (long long)((a->tick_t_ms + WINDOW_MS - 1) / WINDOW_MS),
                 OPTIMUM_MAX_INTERVALS, KPI_OPTIMUM_MAX_ENTRIES);
    else if (a->iv_dropped)
        snprintf(err, errlen, "optimum: out of memory for the 15-minute intervals");
    if (a->iv_dropped)
        return opt_fail(a, a->iv_dropped);
    if (a->n_iv == 0)
        return 0;
    size_t n = a->n_iv;
    double *net = malloc(n * sizeof *net), *imp = malloc(n * sizeof *imp),
           *exp_ = malloc(n * sizeof *exp_);
    int rc = -ENOMEM;
    if (!net || !imp || !exp_) {
        snprintf(err, errlen, "optimum: out of memory");
        goto out;
    }
    iv_means(a, site, net, imp, exp_);
    struct optimum_problem pb = {.objective = OPTIMUM_MIN_COST,
                                 .n = n,
                                 .dt_s = WINDOW_MS / 1000.0,
                                 .last_dt_s = a->iv_ms[n - 1] / 1000.0,
                                 .net_load_w = net,
                                 .import_price = imp,
                                 .export_price = exp_,
                                 .batteries = b,
                                 .n_batteries = n_batteries};
    struct optimum_result res;
    if ((rc = optimum_solve(&pb, &res, NULL, err, errlen)) != 0)
        goto out;
    a->opt_savings += res.optimal_savings;
    a->opt_sites++;
    double ev = end_value(a->os[site].soc_last, b, n_batteries, imp, n);
    if (isfinite(ev)) {
        a->end_value += ev;
        a->end_sites++;
    }
out:
    free(net);
    free(imp);
    free(exp_);
    return rc ? opt_fail(a, rc) : 0;
}

int kpi_acc_optimum_peak(struct kpi_acc *a, const struct optimum_battery *b, size_t n_batteries,
                         char *err, size_t errlen)
{
    if (a->opt_failed || a->opt_sites == 0 || n_batteries == 0 ||
        n_batteries > OPTIMUM_MAX_BATTERIES || a->n_iv == 0)
        return 0;
    size_t n = a->n_iv;
    /* one site: its prices too, for the cheapest schedule that holds the peak (the peak is the
     * same without; the solve is the one single-site runs have always had) */
    int one = a->n_sites == 1;
    double *net = malloc(n * sizeof *net), *imp = one ? malloc(n * sizeof *imp) : NULL,
           *exp_ = one ? malloc(n * sizeof *exp_) : NULL;
    int rc = -ENOMEM;
    if (!net || (one && (!imp || !exp_))) {
        snprintf(err, errlen, "optimum: out of memory");
        goto out;
    }
    iv_means(a, one ? 0 : SIZE_MAX, net, imp, exp_);
    struct optimum_problem pb = {.objective = OPTIMUM_MIN_PEAK,
                                 .n = n,
                                 .dt_s = WINDOW_MS / 1000.0,
                                 .last_dt_s = a->iv_ms[n - 1] / 1000.0,
                                 .net_load_w = net,
                                 .import_price = imp,
                                 .export_price = exp_,
                                 .batteries = b,
                                 .n_batteries = n_batteries};
    struct optimum_result res;
    if ((rc = optimum_solve(&pb, &res, NULL, err, errlen)) == 0)
        a->opt_peak_w = res.peak_w;
out:
    free(net);
    free(imp);
    free(exp_);
    return rc;
}

double kpi_acc_window_import_w(const struct kpi_acc *a)
{
    return a->last_win_w;
}

void kpi_acc_decision(struct kpi_acc *a, size_t site, const struct decision *dm)
{
    if (site >= a->n_sites)
        return;
    uint32_t now[CLAMP_SLOTS] = {0};
    for (size_t i = 0; i < dm->n_clamps; i++) {
        const struct decision_clamp *c = &dm->clamp[i];
        int slot = c->asset >= 0 && c->asset < PROCIMG_MAX_DEVICES ? c->asset : PROCIMG_MAX_DEVICES;
        if (c->reason < DR_COUNT)
            now[slot] |= 1u << c->reason;
    }
    uint32_t *prev = a->clamped[site];
    for (int s = 0; s < CLAMP_SLOTS; s++) {
        uint32_t rising = now[s] & ~prev[s];
        for (int r = 0; rising && r < DR_COUNT; r++)
            if (rising & (1u << r)) {
                a->v[KPI_INTERLOCK_FIRST + r] += 1;
                a->v[KPI_INTERLOCK_TOTAL] += 1;
            }
        prev[s] = now[s];
    }
}

void kpi_acc_site_totals(struct kpi_acc *a, const struct kpi_site_totals *t)
{
    a->capacity_wh += t->battery_capacity_wh;
    a->v[KPI_EV_ENERGY_DELIVERED_KWH] += t->ev_delivered_wh;
    a->v[KPI_EV_ENERGY_REQUESTED_KWH] += t->ev_requested_wh;
    a->v[KPI_EV_SHORTFALL_KWH] += t->ev_shortfall_wh;
    a->v[KPI_EV_SESSIONS_COMPLETED] += t->ev_sessions_done;
    a->v[KPI_EV_SESSIONS_FULL] += t->ev_sessions_full;
    a->v[KPI_BOILER_ENERGY_KWH] += t->boiler_energy_wh;
}

void kpi_acc_bus(struct kpi_acc *a, const struct bus_stats *st)
{
    a->v[KPI_MODBUS_REQUESTS] += (double)st->requests;
    a->v[KPI_MODBUS_TIMEOUTS] += (double)st->timeouts;
    a->v[KPI_MODBUS_EXCEPTIONS] += (double)st->exceptions;
    a->v[KPI_MODBUS_CONN_ERRORS] += (double)st->conn_errors;
    a->v[KPI_MODBUS_PROTO_ERRORS] += (double)st->proto_errors;
    a->v[KPI_MODBUS_RETRIES] += (double)st->retries;
    a->v[KPI_MODBUS_BREAKER_OPENS] += (double)st->breaker_opens;
    a->v[KPI_MODBUS_BREAKER_REJECTS] += (double)st->breaker_rejects;
}

void kpi_acc_counters(struct kpi_acc *a, uint64_t writes, uint64_t cycles, unsigned checks,
                      unsigned view_mismatches)
{
    a->v[KPI_SETPOINT_WRITES] = (double)writes;
    a->v[KPI_GATEWAY_CYCLES] = (double)cycles;
    a->v[KPI_CHECK_FAILURES] = checks;
    a->v[KPI_VIEW_MISMATCHES] = view_mismatches;
}

static double ratio_left(double part, double whole)
{
    if (!(whole > 0))
        return 0;
    double r = 1.0 - part / whole;
    return r < 0 ? 0 : r > 1 ? 1 : r;
}

void kpi_acc_result(const struct kpi_acc *a, struct kpi_set *out)
{
    struct kpi_acc tmp = *a; /* closing the last, partial window must not change a */
    close_window(&tmp);
    memcpy(out->v, a->v, sizeof out->v);
    static const int wh[] = {KPI_ENERGY_IMPORT_KWH,       KPI_ENERGY_EXPORT_KWH,
                             KPI_PV_ENERGY_KWH,           KPI_CONSUMPTION_KWH,
                             KPI_BATTERY_CHARGE_KWH,      KPI_BATTERY_DISCHARGE_KWH,
                             KPI_EV_ENERGY_DELIVERED_KWH, KPI_EV_ENERGY_REQUESTED_KWH,
                             KPI_EV_SHORTFALL_KWH,        KPI_BOILER_ENERGY_KWH};
    for (size_t i = 0; i < sizeof wh / sizeof wh[0]; i++)
        out->v[wh[i]] /= 1000.0;
    out->v[KPI_NET_COST] = out->v[KPI_ENERGY_COST] - out->v[KPI_EXPORT_REVENUE];
    out->v[KPI_PEAK_IMPORT_KW] /= 1000.0;
    out->v[KPI_PEAK_IMPORT_15M_KW] = tmp.peak_win_w / 1000.0;
    out->v[KPI_SELF_CONSUMPTION_RATIO] =
        ratio_left(out->v[KPI_ENERGY_EXPORT_KWH], out->v[KPI_PV_ENERGY_KWH]);
    out->v[KPI_SELF_SUFFICIENCY_RATIO] =
        ratio_left(out->v[KPI_ENERGY_IMPORT_KWH], out->v[KPI_CONSUMPTION_KWH]);
    out->v[KPI_BATTERY_THROUGHPUT_KWH] =
        out->v[KPI_BATTERY_CHARGE_KWH] + out->v[KPI_BATTERY_DISCHARGE_KWH];
    out->v[KPI_BATTERY_EQUIVALENT_CYCLES] =
        a->capacity_wh > 0 ? out->v[KPI_BATTERY_THROUGHPUT_KWH] * 1000.0 / (2 * a->capacity_wh) : 0;
    int opt = !a->opt_failed && a->opt_sites > 0;
    out->v[KPI_OPTIMAL_SAVINGS] = opt ? a->opt_savings : NAN;
    out->v[KPI_OPTIMAL_PEAK_15M_KW] = opt ? a->opt_peak_w / 1000.0 : NAN;
    out->v[KPI_END_ENERGY_VALUE] = opt && a->end_sites > 0 ? a->end_value : NAN;
    int step = a->step_w != 0;
    out->v[KPI_STEP_SIZE_W] = step ? fabs(a->step_w) : NAN;
    out->v[KPI_STEP_SETTLING_S] = step ? (a->step_last_out_ms - a->step_t_ms) / 1000.0 : NAN;
    out->v[KPI_STEP_OVERSHOOT_PCT] = step ? 100.0 * a->step_overshoot_w / fabs(a->step_w) : NAN;
    out->v[KPI_STEP_RESIDUAL_RMS_W] =
        step && a->step_sq_ms > 0 ? sqrt(a->step_sq_w2 / (double)a->step_sq_ms) : NAN;
    double fcr_req = 0, fcr_del = 0;
    out->v[KPI_FCR_ACTIVATION_S] = out->v[KPI_FFR_ACTIVATION_S] = NAN;
    out->v[KPI_FFR_SUPPORT_PCT] = NAN;
    for (size_t i = 0; i < a->n_sites; i++) {
        struct fr_site f = a->fr[i]; /* closing what is still open must not change a */
        if (!f.on)
            continue;
        fr_fcr_close(&f, f.t_ms);
        fr_ffr_close(&f, f.t_ms);
        out->v[KPI_FCR_ACTIVATION_S] = fmax(out->v[KPI_FCR_ACTIVATION_S], f.fcr_worst_s);
        out->v[KPI_FFR_ACTIVATION_S] = fmax(out->v[KPI_FFR_ACTIVATION_S], f.ffr_worst_s);
        out->v[KPI_FFR_SUPPORT_PCT] = fmin(out->v[KPI_FFR_SUPPORT_PCT], f.ffr_support_worst);
        fcr_req += f.fcr_req_wh;
        fcr_del += f.fcr_del_wh;
    }
    out->v[KPI_FCR_ENERGY_PCT] = fcr_req > 0 ? 100.0 * fcr_del / fcr_req : NAN;
    out->v[KPI_UNSERVED_ENERGY_KWH] /= 1000.0;
    out->v[KPI_ISLAND_SUPPLY_PCT] =
        a->island_demand_wh > 0
            ? 100.0 * (1.0 - a->v[KPI_UNSERVED_ENERGY_KWH] / a->island_demand_wh)
            : NAN;
    for (int i = KPI_VS_FIRST; i < KPI_COUNT; i++)
        out->v[i] = NAN;
}

static double pct_reduction(double base, double run)
{
    return base != 0 ? 100.0 * (base - run) / fabs(base) : 0;
}

static double zero_nan(double v)
{
    return isnan(v) ? 0 : v;
}

void kpi_vs_baseline(struct kpi_set *run, const struct kpi_set *base)
{
    const double *r = run->v, *b = base->v;
    run->v[KPI_COST_REDUCTION_PCT] = pct_reduction(b[KPI_NET_COST], r[KPI_NET_COST]);
    run->v[KPI_PEAK_REDUCTION_PCT] =
        pct_reduction(b[KPI_PEAK_IMPORT_15M_KW], r[KPI_PEAK_IMPORT_15M_KW]);
    run->v[KPI_PEAK_INSTANT_REDUCTION_PCT] =
        pct_reduction(b[KPI_PEAK_IMPORT_KW], r[KPI_PEAK_IMPORT_KW]);
    run->v[KPI_IMPORT_REDUCTION_KWH] = b[KPI_ENERGY_IMPORT_KWH] - r[KPI_ENERGY_IMPORT_KWH];
    run->v[KPI_SELF_CONSUMPTION_GAIN] =
        r[KPI_SELF_CONSUMPTION_RATIO] - b[KPI_SELF_CONSUMPTION_RATIO];
    run->v[KPI_SELF_SUFFICIENCY_GAIN] =
        r[KPI_SELF_SUFFICIENCY_RATIO] - b[KPI_SELF_SUFFICIENCY_RATIO];
    run->v[KPI_SAVINGS_VS_OPTIMAL_PCT] =
        isnan(r[KPI_OPTIMAL_SAVINGS])
            ? NAN
            : optimum_savings_vs_optimal_pct(
                  (b[KPI_NET_COST] - zero_nan(b[KPI_END_ENERGY_VALUE])) -
                      (r[KPI_NET_COST] - zero_nan(r[KPI_END_ENERGY_VALUE])),
                  r[KPI_OPTIMAL_SAVINGS]);
    run->v[KPI_UNSERVED_REDUCTION_KWH] = b[KPI_UNSERVED_ENERGY_KWH] - r[KPI_UNSERVED_ENERGY_KWH];
}

/* ---- output ---------------------------------------------------------------------------------- */

static int by_name(const void *x, const void *y)
{
    return strcmp(table[*(const int *)x].name, table[*(const int *)y].name);
}

void kpi_write_members(FILE *f, const struct kpi_set *k, int first, int last, int indent)
{
    int ids[KPI_COUNT] = {0}, n = 0;
    for (int i = first; i < last && i < KPI_COUNT; i++)
        ids[n++] = i;
    qsort(ids, (size_t)n, sizeof ids[0], by_name);
    for (int j = 0; j < n; j++) {
        const struct kpi_def *d = &table[ids[j]];
        double v = k->v[ids[j]];
        char num[64];
        if (isfinite(v)) {
            snprintf(num, sizeof num, "%.*f", d->precision, v);
            /* a value that rounds to zero prints as 0, never -0.000 */
            if (num[0] == '-' && strspn(num + 1, "0.") == strlen(num + 1))
                memmove(num, num + 1, strlen(num));
        } else {
            snprintf(num, sizeof num, "null");
        }
        fprintf(f, "%*s\"%s\": %s%s\n", indent, "", d->name, num, j + 1 < n ? "," : "");
    }
}

static const char *better_name(enum kpi_better b)
{
    return b == KPI_LOWER ? "lower" : b == KPI_HIGHER ? "higher" : "-";
}

void kpi_markdown(FILE *f)
{
    fputs("# KPIs\n\n"
          "<!-- Generated by `der-sim kpis` from the table in reports/kpi.c; do not edit. -->\n\n"
          "Every `der-sim run` writes `kpis.json` with these KPIs, computed in C while the run "
          "runs\n(a streaming accumulator fed every step from the site balance and state, every "
          "gateway\ncycle's DecisionMetrics and, at the end, the gateway's bus statistics), "
          "never by re-reading\nthe CSV files. Powers use the site signs of the design brief: "
          "grid_w + import, battery_w\n+ discharge, pv_w + production, load, EVSE and boiler + "
          "consumption. dt is the step.\nA scenario's `expect` block bounds any of them by name "
          "(docs/reports.md). `better` says\nwhich way a sweep's `--optimise` and the report "
          "count as an improvement.\n\n"
          "## Per run (`kpis` and `baseline.kpis` in kpis.json)\n\n"
          "| KPI | unit | better | definition |\n|---|---|---|---|\n",
          f);
    for (int i = 0; i < KPI_COUNT; i++) {
        if (i == KPI_VS_FIRST)
            fputs("\n## Against the baseline (`vs_baseline` in kpis.json)\n\n"
                  "The baseline is the same scenario run with the baseline strategy (`null` "
                  "unless the\nscenario's `expect.baseline_strategy` names another), in the "
                  "same process, in-process\ntransport. These are null when the baseline was "
                  "not run (`--no-baseline`).\n\n"
                  "| KPI | unit | better | definition |\n|---|---|---|---|\n",
                  f);
        fprintf(f, "| `%s` | %s | %s | %s |\n", table[i].name, table[i].unit,
                better_name(table[i].better), table[i].formula);
    }
    fputs("\n## Also in kpis.json\n\n"
          "- `scenario`: name, seed, the scenario file's SHA-256, the strategy.\n"
          "- `digest_outputs`: the SHA-256 of timeseries.csv, decisions.csv and events.log. "
          "The run's\n  digest that `der-sim run` prints is the SHA-256 of those three files "
          "and kpis.json.\n"
          "- `expectations`: every expectation of the scenario with its bounds, value and "
          "result.\n"
          "- `notes`: why a KPI is 0 or null when that is not obvious (no prices, no baseline).\n",
          f);
}
