/* kpi: the key performance indicators of a run, computed while it runs. One declarative table
 * names every KPI with its unit, precision and formula (docs/kpis.md is printed from it); an
 * accumulator (kpi_acc.c) is fed every tick with one sample per site and every gateway cycle's
 * DecisionMetrics, and turned into a kpi_set at the end; the optimum's KPIs have their own
 * accumulator (optimum_kpi.h). kpi_acc_new returns an accumulator the caller owns
 * (kpi_acc_free); kpi_set is a plain value. */
#ifndef DERLOOP_KPI_H
#define DERLOOP_KPI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/tariff.h"
#include "gateway/bus/bus.h"
#include "gateway/control/decision.h"
#include "gateway/strategies/strat_gridsvc.h"

#define KPI_WH_PER_W_MS (1.0 / 3600000.0)
#define KPI_WINDOW_MS   (15 * 60 * 1000) /* the billing interval of demand charges (EU/US norm) */

/* Every KPI, in table order. KPI_VS_FIRST.. are the deltas against the baseline run. */
enum kpi_id {
    KPI_ENERGY_IMPORT_KWH,
    KPI_ENERGY_EXPORT_KWH,
    KPI_PV_ENERGY_KWH,
    KPI_CONSUMPTION_KWH,
    KPI_PRICES_KNOWN,
    KPI_ENERGY_COST,
    KPI_EXPORT_REVENUE,
    KPI_NET_COST,
    KPI_BILL_ENERGY, /* the bill: energy, demand and standing charges (common/tariff.h) */
    KPI_BILL_DEMAND,
    KPI_BILL_FIXED,
    KPI_BILL_TOTAL,
    KPI_PEAK_IMPORT_KW,
    KPI_PEAK_IMPORT_15M_KW,
    KPI_SELF_CONSUMPTION_RATIO,
    KPI_SELF_SUFFICIENCY_RATIO,
    KPI_BATTERY_CHARGE_KWH,
    KPI_BATTERY_DISCHARGE_KWH,
    KPI_BATTERY_THROUGHPUT_KWH,
    KPI_BATTERY_EQUIVALENT_CYCLES,
    KPI_SOC_MIN,
    KPI_SOC_MAX,
    KPI_SOC_OUTSIDE_LIMITS_S,
    KPI_INTERLOCK_FIRST, /* one per enum decision_reason, same order */
    KPI_INTERLOCK_TOTAL = KPI_INTERLOCK_FIRST + DR_COUNT,
    KPI_SETPOINT_WRITES,
    KPI_GATEWAY_CYCLES,
    KPI_MODBUS_REQUESTS,
    KPI_MODBUS_TIMEOUTS,
    KPI_MODBUS_EXCEPTIONS,
    KPI_MODBUS_CONN_ERRORS,
    KPI_MODBUS_PROTO_ERRORS,
    KPI_MODBUS_RETRIES,
    KPI_MODBUS_BREAKER_OPENS,
    KPI_MODBUS_BREAKER_REJECTS,
    KPI_TELEMETRY_DROPPED, /* the uplinks' telemetry lost while the headend was gone */
    KPI_EV_ENERGY_DELIVERED_KWH,
    KPI_EV_ENERGY_REQUESTED_KWH,
    KPI_EV_SHORTFALL_KWH,
    KPI_EV_SESSIONS_COMPLETED,
    KPI_EV_SESSIONS_FULL,
    KPI_BOILER_ENERGY_KWH,
    KPI_BOILER_BELOW_MIN_S,
    KPI_OUTAGE_S, /* grid outages: the sites islanded (sim/run/site.h) */
    KPI_UNSERVED_ENERGY_KWH,
    KPI_ISLAND_SUPPLY_PCT,
    KPI_CHECK_FAILURES,
    KPI_VIEW_MISMATCHES,
    KPI_STEP_SIZE_W, /* the response of the site to its largest uncontrolled load step */
    KPI_STEP_SETTLING_S,
    KPI_STEP_OVERSHOOT_PCT,
    KPI_STEP_T90_S, /* how fast, and whether the grid comes back (issue 14) */
    KPI_STEP_T98_S,
    KPI_STEP_REBOUND_PCT,
    KPI_STEP_RESIDUAL_RMS_W,
    KPI_FCR_ACTIVATION_S, /* frequency response against the gateway's grid_services contract */
    KPI_FCR_ENERGY_PCT,
    KPI_FFR_ACTIVATION_S,
    KPI_FFR_SUPPORT_PCT,
    KPI_SETPOINT_REVERSALS_PER_H, /* oscillation of the control loop (reports/oscill.h) */
    KPI_SITE_SETPOINT_REVERSALS_PER_H,
    KPI_GRID_TARGET_RMS_W,
    KPI_GRID_OSC_PERIOD_S,
    KPI_GRID_OSC_AMPLITUDE_W,
    KPI_GRID_OSC_TIME_S,
    KPI_GRID_OSC_SHARE,
    KPI_FIELD_FIRST, /* replay against field records (reports/fidelity.h): 3 per series */
    KPI_FIELD_GRID_RMSE_W = KPI_FIELD_FIRST,
    KPI_FIELD_GRID_BIAS_W,
    KPI_FIELD_GRID_CORR,
    KPI_FIELD_SOC_RMSE,
    KPI_FIELD_SOC_BIAS,
    KPI_FIELD_SOC_CORR,
    KPI_FIELD_BATTERY_RMSE_W,
    KPI_FIELD_BATTERY_BIAS_W,
    KPI_FIELD_BATTERY_CORR,
    KPI_FIELD_OSC_PERIOD_S, /* the record's oscillation, and the replay's at its samples */
    KPI_FIELD_OSC_AMPLITUDE_W,
    KPI_FIELD_REPLAY_OSC_PERIOD_S,
    KPI_FIELD_REPLAY_OSC_AMPLITUDE_W,
    KPI_OPTIMAL_SAVINGS, /* the perfect-foresight optimum (reports/optimum.h) */
    KPI_OPTIMAL_NET_COST,
    KPI_OPTIMAL_PEAK_15M_KW,
    KPI_END_ENERGY_VALUE, /* the end-of-run stored energy against the start, valued */
    KPI_VS_FIRST,         /* deltas against the baseline */
    KPI_COST_REDUCTION_PCT = KPI_VS_FIRST,
    KPI_PEAK_REDUCTION_PCT,
    KPI_PEAK_INSTANT_REDUCTION_PCT,
    KPI_IMPORT_REDUCTION_KWH,
    KPI_SELF_CONSUMPTION_GAIN,
    KPI_SELF_SUFFICIENCY_GAIN,
    KPI_SAVINGS_VS_OPTIMAL_PCT,
    KPI_UNSERVED_REDUCTION_KWH,
    KPI_COUNT
};

/* Which way is better, for sweeps (--optimise) and the report's colouring. */
enum kpi_better { KPI_NEUTRAL = 0, KPI_LOWER = -1, KPI_HIGHER = 1 };

struct kpi_def {
    const char *name; /* the key in kpis.json and in a scenario's `expect` */
    const char *unit; /* "kWh", "currency", "1" (a ratio), "s", "count", ... */
    int precision;    /* decimals in kpis.json */
    enum kpi_better better;
    const char *formula; /* the definition, for docs/kpis.md and the report */
};

const struct kpi_def *kpi_def(int id); /* NULL outside [0, KPI_COUNT) */
int kpi_find(const char *name);        /* the id, or -1 */
static inline int kpi_is_vs_baseline(int id)
{
    return id >= KPI_VS_FIRST;
}

/* The KPIs of one run; deltas are NaN until kpi_vs_baseline fills them. */
struct kpi_set {
    double v[KPI_COUNT];
};

/* What the runner hands over for one site after one physics step of dt_ms ending at t_ms. */
struct kpi_sample {
    double grid_w, load_w, pv_w, battery_w, evse_w, boiler_w; /* site signs (docs/physics.md) */
    double import_price, export_price; /* currency/kWh at the step's start; NaN = no price */
    double soc_lo, soc_hi;             /* lowest and highest battery SoC; NaN = no battery */
    double soc_mean;                   /* capacity-weighted SoC; NaN = no battery */
    int boilers_below_min;             /* boilers under their comfort minimum */
    double boiler_temp_c;              /* the first boiler's tank, NaN = none (plots) */
    double ev_cars;                    /* cars present at the site's chargers (plots) */
    int islanded;                      /* a grid outage was active during the step */
    double unserved_w;                 /* demand not supplied (load shed) while islanded */
    double freq_hz;    /* the grid frequency during the step (grid meter); NaN = no grid meter */
    double pv_avail_w; /* what the PV could have delivered (pv_w before curtailment); the
                        * optimum's net load, since curtailing is the strategy's choice */
};

/* End-of-run figures of one site that its models accumulate themselves. */
struct kpi_site_totals {
    double battery_capacity_wh;
    double ev_delivered_wh, ev_requested_wh, ev_shortfall_wh;
    int ev_sessions_done, ev_sessions_full;
    double boiler_energy_wh;
};

struct kpi_acc;

/* n_sites sites; SoC outside [soc_floor, soc_ceiling] counts as outside the limits. */
struct kpi_acc *kpi_acc_new(size_t n_sites, double soc_floor, double soc_ceiling);
void kpi_acc_free(struct kpi_acc *a);

/* The frequency-response requirement a site is judged by (the fcr_* and ffr_* KPIs): the
 * grid_services contract of the gateway's configuration (gateway/strategies/strat_gridsvc.h)
 * around the grid's nominal frequency (nominal_hz: the grid's, not what the gateway believes). A
 * power of 0 means no such service; a site without a contract is not judged. */
void kpi_acc_freq_params(struct kpi_acc *a, size_t site, const struct gridsvc_contract *p);

/* The site's standing and demand charges (bill_demand, bill_fixed), with the calendar instant
 * of t = 0 (billing months and time windows are UTC). A site without a call pays neither. */
void kpi_acc_tariff(struct kpi_acc *a, size_t site, const struct tariff_charges *c,
                    int64_t start_unix_ms);

/* One site's sample for the step [t_ms - dt_ms, t_ms). Call for every site, then
 * kpi_acc_tick_end, which closes the site sum (peaks are the whole scenario's). Steps follow one
 * another from t = 0: a step starts where the last kpi_acc_tick_end ended. */
void kpi_acc_site(struct kpi_acc *a, size_t site, const struct kpi_sample *s, int64_t dt_ms);
void kpi_acc_tick_end(struct kpi_acc *a, int64_t t_ms, int64_t dt_ms);

/* The mean import of the last completed 15-minute window, in W (0 before the first): plots. */
double kpi_acc_window_import_w(const struct kpi_acc *a);

/* A gateway cycle of `site`: interlock activations are counted on the rising edge, per
 * (asset, reason), so a clamp held for an hour is one activation. */
void kpi_acc_decision(struct kpi_acc *a, size_t site, const struct decision *dm);

/* End of run: totals per site, bus statistics and run counters, then the set. */
void kpi_acc_site_totals(struct kpi_acc *a, const struct kpi_site_totals *t);
void kpi_acc_bus(struct kpi_acc *a, const struct bus_stats *st);
void kpi_acc_counters(struct kpi_acc *a, uint64_t writes, uint64_t cycles, unsigned checks,
                      unsigned view_mismatches);
/* The telemetry messages the gateways' uplinks dropped during headend outages (the runner's
 * runner_telemetry_dropped); NaN, the default, when no headend was in the loop. */
void kpi_acc_telemetry_dropped(struct kpi_acc *a, double dropped);
void kpi_acc_result(const struct kpi_acc *a, struct kpi_set *out); /* optimum KPIs null */

/* Fills the KPI_VS_* entries of run from run and base (formulas in the table). */
void kpi_vs_baseline(struct kpi_set *run, const struct kpi_set *base);

/* Writes the KPIs of [first, last) as JSON members `"name": value` sorted by name, fixed
 * precision, one per line with `indent` spaces; NaN is written as null. */
void kpi_write_members(FILE *f, const struct kpi_set *k, int first, int last, int indent);

/* docs/kpis.md: the table as Markdown (`der-sim kpis`). */
void kpi_markdown(FILE *f);

#endif
