/* kpi: see kpi.h. The table below is the one definition of every KPI: its name, unit,
 * precision and formula (docs/kpis.md is printed from it); the accumulator that computes them
 * is kpi_acc.c, the frequency response freqresp.c, the optimum's optimum_kpi.c. */
#include "reports/kpi.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reports/optimum.h"

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
    [KPI_NET_COST] = {"net_cost", "currency", 4, KPI_LOWER,
                      "energy_cost - export_revenue: the energy part of the bill (bill_energy)"},
    [KPI_BILL_ENERGY] = {"bill_energy", "currency", 4, KPI_LOWER,
                         "net_cost: what the energy prices charge, import and export"},
    [KPI_BILL_DEMAND] = {"bill_demand", "currency", 4, KPI_LOWER,
                         "sum over sites and billing periods (a UTC month, or the run) of the "
                         "site's tariff.demand_charge.price_per_kw x its highest 15-minute mean "
                         "import in kW (windows aligned to the scenario start, as "
                         "peak_import_15m_kw, each in the period and time windows of its start; "
                         "a last, shorter window over its own length); 0 without a demand charge"},
    [KPI_BILL_FIXED] = {"bill_fixed", "currency", 4, KPI_NEUTRAL,
                        "sum over sites of tariff.standing_charge_per_day x the run's length in "
                        "days; 0 without one"},
    [KPI_BILL_TOTAL] = {"bill_total", "currency", 4, KPI_LOWER,
                        "bill_energy + bill_demand + bill_fixed"},
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
    [KPI_TELEMETRY_DROPPED] = {"telemetry_dropped", "count", 0, KPI_LOWER,
                               "telemetry messages the gateways' uplinks dropped (memory queue "
                               "full, gateway.uplink.queue_len) between the start and the end of "
                               "each headend_outage, summed over the outages and the sites: the "
                               "figure of events.log's headend_outage_end lines (an outage still "
                               "under way at the end counts to the end). Outside outages nothing "
                               "is counted: the runner waits for the uplinks to drain before an "
                               "outage, so the count does not depend on how fast the machine "
                               "sends. Null without a headend in the loop (no `headend` object, "
                               "and the baseline)"},
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
    [KPI_STEP_T90_S] = {"step_t90_s", "s", 1, KPI_LOWER,
                        "from the step until the summed grid power has first come 90 % of the "
                        "way back (what is left in the step's direction <= 10 % of the step); "
                        "null when it never does"},
    [KPI_STEP_T98_S] = {"step_t98_s", "s", 1, KPI_LOWER,
                        "as step_t90_s, for 98 % (what is left <= 2 % of the step)"},
    [KPI_STEP_REBOUND_PCT] = {"step_rebound_pct", "%", 2, KPI_LOWER,
                              "after the grid has come 90 % of the way back: the largest power "
                              "in the step's direction again, as a percentage of the step (a "
                              "loop whose P term drops before its I term has built rebounds); "
                              "0 when it never comes back, null without t90"},
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
    [KPI_SETPOINT_REVERSALS_PER_H] = {"setpoint_reversals_per_h", "count/h", 2, KPI_LOWER,
                                      "the highest over batteries of the reversals of the "
                                      "battery's final setpoint (decisions.csv) per hour of run: "
                                      "a reversal is a move of at least 100 W against the "
                                      "direction of the last move, from its extreme "
                                      "(hysteresis, so jitter never counts); null without a "
                                      "battery setpoint"},
    [KPI_SITE_SETPOINT_REVERSALS_PER_H] = {"site_setpoint_reversals_per_h", "count/h", 2, KPI_LOWER,
                                           "the same for the sum of a site's battery setpoints, "
                                           "highest over the sites"},
    [KPI_GRID_TARGET_RMS_W] = {"grid_target_rms_w", "W", 1, KPI_LOWER,
                               "RMS of a site's grid power around its strategy's target "
                               "(decisions.csv target_w of the last cycle: 0 or target_w for "
                               "net_zero, the import limit for peak_shaving, ...) over the steps "
                               "where the strategy regulates towards one (its error_w is finite); "
                               "highest over the sites; null when no strategy had a target"},
    [KPI_GRID_OSC_PERIOD_S] =
        {"grid_osc_period_s", "s", 1, KPI_NEUTRAL,
         "the dominant period of the in-band window with the largest "
         "amplitude. Each site's grid power (its mean never counts) is cut into "
         "5-minute windows aligned to the start (steps averaged in groups "
         "so that a window holds at most 600 samples; no analysis below 16); "
         "a window's dominant component is the largest bin of its DFT over "
         "every period, refined by the power centroid of that bin and its "
         "two neighbours; the window is in the band when that bin is the "
         "third or higher (at least three cycles per window: periods up to "
         "about 100 s) - a load step, "
         "its recovery or a ramp is dominant at the longest periods and "
         "never counts. null when no window is in the band"},
    [KPI_GRID_OSC_AMPLITUDE_W] = {"grid_osc_amplitude_w", "W", 1, KPI_LOWER,
                                  "the largest dominant amplitude over in-band windows and "
                                  "sites: 2/n x the root of the energy of the dominant bin and "
                                  "its neighbours (a sinusoid's amplitude, within 8 %); 0 when "
                                  "no window is in the band; null when no window was analysed "
                                  "(a run shorter than 2.5 minutes, steps over 18.75 s)"},
    [KPI_GRID_OSC_TIME_S] = {"grid_osc_time_s", "s", 1, KPI_LOWER,
                             "time spent oscillating: the summed length of the windows (over "
                             "sites) whose dominant period is in the band and amplitude 200 W or "
                             "more; a last window counts when it covers "
                             "half a window; null as grid_osc_amplitude_w"},
    [KPI_GRID_OSC_SHARE] = {"grid_osc_share", "1", 4, KPI_LOWER,
                            "grid_osc_time_s / (run length x sites), in [0, 1]"},
    [KPI_FIELD_GRID_RMSE_W] = {"field_grid_rmse_w", "W", 1, KPI_LOWER,
                               "RMS of (replay - record) grid power over the samples of the "
                               "scenario's field record (empty cells skipped): each against the "
                               "replay's grid power (summed over the sites) of the first step "
                               "ending at or after it; null without a field block or a grid_w "
                               "column"},
    [KPI_FIELD_GRID_BIAS_W] = {"field_grid_bias_w", "W", 1, KPI_NEUTRAL,
                               "mean of (replay - record) grid power over the same samples"},
    [KPI_FIELD_GRID_CORR] = {"field_grid_corr", "1", 4, KPI_HIGHER,
                             "Pearson correlation of replay and record grid power over the same "
                             "samples; null when either is constant"},
    [KPI_FIELD_SOC_RMSE] = {"field_soc_rmse", "1", 4, KPI_LOWER,
                            "as field_grid_rmse_w for the SoC (the first site's capacity-"
                            "weighted mean after the step) against the record's soc"},
    [KPI_FIELD_SOC_BIAS] = {"field_soc_bias", "1", 4, KPI_NEUTRAL,
                            "mean of (simulated - recorded) SoC"},
    [KPI_FIELD_SOC_CORR] = {"field_soc_corr", "1", 4, KPI_HIGHER,
                            "correlation of simulated and recorded SoC"},
    [KPI_FIELD_BATTERY_RMSE_W] = {"field_battery_rmse_w", "W", 1, KPI_LOWER,
                                  "as field_grid_rmse_w for the battery power (all batteries, "
                                  "+ discharge) against the record's battery_w"},
    [KPI_FIELD_BATTERY_BIAS_W] = {"field_battery_bias_w", "W", 1, KPI_NEUTRAL,
                                  "mean of (simulated - recorded) battery power"},
    [KPI_FIELD_BATTERY_CORR] = {"field_battery_corr", "1", 4, KPI_HIGHER,
                                "correlation of simulated and recorded battery power"},
    [KPI_FIELD_OSC_PERIOD_S] = {"field_osc_period_s", "s", 1, KPI_NEUTRAL,
                                "the recorded grid power's oscillation: its samples are "
                                "resampled onto the record's median interval (the lower middle "
                                "of an even count) from its first sample on, linearly between "
                                "the two samples around each instant (none where those are more "
                                "than two intervals apart: a gap), and cut into the 5-minute "
                                "windows of grid_osc_period_s (at least 16 samples, a window "
                                "with a gap left out); the mean dominant period over the windows "
                                "in the band (null when none is). An evenly sampled record is "
                                "analysed as recorded. A record sampled slower than the "
                                "oscillation shows it aliased; field_replay_osc_* sample and "
                                "resample the replay the same way, so the two compare like with "
                                "like"},
    [KPI_FIELD_OSC_AMPLITUDE_W] = {"field_osc_amplitude_w", "W", 1, KPI_NEUTRAL,
                                   "the mean dominant amplitude of the recorded grid power over "
                                   "the same windows (0 for a window out of the band); null "
                                   "without a window"},
    [KPI_FIELD_REPLAY_OSC_PERIOD_S] = {"field_replay_osc_period_s", "s", 1, KPI_NEUTRAL,
                                       "field_osc_period_s of the replay's grid power taken at "
                                       "the record's sample times (the end of the first step at "
                                       "or after each), resampled as the record"},
    [KPI_FIELD_REPLAY_OSC_AMPLITUDE_W] = {"field_replay_osc_amplitude_w", "W", 1, KPI_NEUTRAL,
                                          "field_osc_amplitude_w of the replay at the record's "
                                          "sample times"},
    [KPI_OPTIMAL_SAVINGS] =
        {"optimal_savings", "currency", 4, KPI_NEUTRAL,
         "what a controller with perfect knowledge of the whole run could save "
         "with the same batteries: the idle-battery cost counted at the run's "
         "own steps (as net_cost + bill_demand) minus optimal_net_cost. Solved "
         "per site "
         "with its own net load, prices and batteries and summed over the "
         "sites (energy cost is separable: nothing is shared); a site without "
         "battery or price (or demand charge) adds 0. Null when no site has both, with "
         "--no-optimum, when a site was islanded by a grid outage (the LP "
         "knows no outage), has more than 8 batteries, cannot be solved in "
         "the --optimum-budget, or over 35136 intervals or 4194304 sites x "
         "intervals (kpis.json's notes and events.log say which)"},
    [KPI_OPTIMAL_NET_COST] = {"optimal_net_cost", "currency", 4, KPI_NEUTRAL,
                              "the lowest net_cost + bill_demand - end_energy_value a controller "
                              "with perfect foresight could reach: the minimum of a linear program "
                              "(GLPK) over 15-minute interval means of the net load and prices "
                              "(and, with a demand charge, one priced peak-import variable per "
                              "billing period), with the "
                              "batteries' limits, efficiencies and the gateway's SoC window, its "
                              "end valued by end_energy_value's rule (docs/kpis.md, "
                              "reports/optimum.h). A lower bound on what any run of the scenario "
                              "pays when prices are constant within each 15-minute interval and "
                              "export pays no more than import (cost is convex in grid power, so "
                              "a run's interval means cost no more than its steps); beyond 14 days "
                              "solved in chunks, a near-optimum (kpis.json's notes say so); null "
                              "as optimal_savings"},
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
                                "100 x (baseline bill_total - bill_total) / |baseline "
                                "bill_total|; 0 when the baseline's bill_total is 0 (without "
                                "demand or standing charges bill_total is net_cost)"},
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
         "100 x (B - (net_cost + bill_demand - end_energy_value)) / (B - optimal_net_cost), "
         "B = baseline net_cost + bill_demand - end_energy_value: the share of "
         "the savings against the baseline a perfect-foresight controller "
         "could reach, with the end of the run valued on both sides by one "
         "rule (an end_energy_value that is null counts 0). At most 100 "
         "(plus the solvers' tolerance, 0.5) whenever optimal_net_cost is a "
         "bound (docs/kpis.md); 100 when nothing could be saved and nothing "
         "was lost; null without optimal_net_cost"},
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

static double pct_reduction(double base, double run)
{
    return base != 0 ? 100.0 * (base - run) / fabs(base) : 0;
}

static double zero_nan(double v)
{
    return isnan(v) ? 0 : v;
}

/* The bill a strategy can change: energy and demand (net_cost is bill_energy; the standing
 * charge is the same whatever it does) */
static double variable_bill(const double *v)
{
    return v[KPI_NET_COST] + v[KPI_BILL_DEMAND];
}

void kpi_vs_baseline(struct kpi_set *run, const struct kpi_set *base)
{
    const double *r = run->v, *b = base->v;
    run->v[KPI_COST_REDUCTION_PCT] =
        pct_reduction(variable_bill(b) + b[KPI_BILL_FIXED], variable_bill(r) + r[KPI_BILL_FIXED]);
    run->v[KPI_PEAK_REDUCTION_PCT] =
        pct_reduction(b[KPI_PEAK_IMPORT_15M_KW], r[KPI_PEAK_IMPORT_15M_KW]);
    run->v[KPI_PEAK_INSTANT_REDUCTION_PCT] =
        pct_reduction(b[KPI_PEAK_IMPORT_KW], r[KPI_PEAK_IMPORT_KW]);
    run->v[KPI_IMPORT_REDUCTION_KWH] = b[KPI_ENERGY_IMPORT_KWH] - r[KPI_ENERGY_IMPORT_KWH];
    run->v[KPI_SELF_CONSUMPTION_GAIN] =
        r[KPI_SELF_CONSUMPTION_RATIO] - b[KPI_SELF_CONSUMPTION_RATIO];
    run->v[KPI_SELF_SUFFICIENCY_GAIN] =
        r[KPI_SELF_SUFFICIENCY_RATIO] - b[KPI_SELF_SUFFICIENCY_RATIO];
    /* both sides against the baseline run, each end valued by one rule: the optimum's
     * savings are (B - optimal_net_cost), the run's (B - its own), so a run can score above 100
     * only by paying less than the optimum, which its schedule (a feasible one) cannot */
    double b_net = variable_bill(b) - zero_nan(b[KPI_END_ENERGY_VALUE]);
    double r_net = variable_bill(r) - zero_nan(r[KPI_END_ENERGY_VALUE]);
    run->v[KPI_SAVINGS_VS_OPTIMAL_PCT] =
        isnan(r[KPI_OPTIMAL_NET_COST])
            ? NAN
            : optimum_savings_vs_optimal_pct(b_net - r_net, b_net - r[KPI_OPTIMAL_NET_COST]);
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
    fputs("\n## The optimum, and why it is a bound\n\n"
          "`savings_vs_optimal_pct` steers tuning, so it must not flatter. Three rules make "
          "`optimal_net_cost`\na lower bound on what any run of the scenario pays (net_cost - "
          "end_energy_value):\n\n"
          "- One terminal valuation on both sides. A run may end with more or less stored energy "
          "than it\n  started with, and so may the optimum: the linear program ends anywhere in "
          "the SoC window and\n  its objective counts the end exactly as `end_energy_value` "
          "counts a run's (a surplus at the\n  run's lowest 15-minute import price times the "
          "discharge efficiency, a deficit at that price\n  over the charge efficiency). Ending "
          "at the start SoC with a surplus worth nothing would be the\n  other fair choice, but "
          "a strategy cannot be made to end exactly there, and it would score a\n  strategy "
          "that keeps a reserve below one that empties the battery at the last minute. A run's\n"
          "  schedule is one the optimum may take, so no run can score above 100 % by hoarding "
          "or by\n  spending its start: a self-consumption run with `min_soc` 0.94, which loses "
          "47 % against doing\n  nothing until its stored energy is counted, scores 40 % "
          "(tests/integration/test_optimum_bound.sh).\n"
          "- The baseline and the optimum on one footing. The optimum works on 15-minute means; "
          "cost is\n  convex in grid power (import dearer than export), so a run's interval means "
          "cost no more than\n  its steps do and the optimum's cost is a lower bound, but its "
          "idle cost on means is lower than\n  the idle cost step by step. Savings are therefore "
          "counted against the baseline run's own\n  (step-by-step) net cost on both sides, and "
          "`optimal_savings` against the idle cost at the run's\n  steps. The bound holds when "
          "prices are constant within each 15-minute interval. The optimum\n  sees the PV "
          "before curtailment (curtailing is the strategy's choice); EVSE and boiler count as\n"
          "  the load the run had.\n"
          "- No figure where the optimum knows less than the run: a site islanded by a grid "
          "outage makes\n  the optimum KPIs null (the LP knows no outage; its figure would "
          "compare nothing), as do\n  `--no-optimum` and a spent `--optimum-budget` (default "
          "10m); kpis.json's `notes` say why.\n\n"
          "- One bill on both sides. With a demand charge (a site's `tariff`, "
          "docs/scenario-format.md)\n  the LP has one priced peak-import column per billing "
          "period, and the baseline, the run and\n  the optimum are all scored on `net_cost + "
          "bill_demand` (the standing charge is the same for\n  all). A run's 15-minute window "
          "mean import is at least its interval's mean grid power, so the\n  bound holds for "
          "the demand part too (the windows are the LP's intervals).\n\n"
          "Up to 14 days (1344 intervals) the optimum is one exact LP. Longer runs are solved in "
          "chunks of\n14 days, each looking 2 days further ahead and carrying the batteries' "
          "energy (and the peaks so\nfar, each demand period's too) into the next: a near-optimum "
          "rather than a proven "
          "bound, and kpis.json's `notes` say so.\nThe solver is checked against a brute-force "
          "dynamic programme in tests/unit/test_optimum.c.\nEvery scenario with the figure "
          "holds it to at most 100.5 % in its `expect` block (the 0.5 is the\nSoC derate "
          "approximation and the solvers' tolerance).\n",
          f);
    fputs("\n## Also in kpis.json\n\n"
          "- `scenario`: name, seed, the scenario file's SHA-256, the strategy.\n"
          "- `digest_outputs`: the SHA-256 of timeseries.csv, decisions.csv and events.log. "
          "The run's\n  digest that `der-sim run` prints is the SHA-256 of those three files "
          "and kpis.json.\n"
          "- `expectations`: every expectation of the scenario with its bounds, value and "
          "result.\n"
          "- `notes`: why a KPI is 0 or null when that is not obvious (no prices, no baseline).\n"
          "- `failure`: only when a phase failed: `error` and `phase` (run, baseline, optimum); "
          "the\n  KPIs are then those of the steps that ran, and events.log ends with "
          "`event=run_failed`.\n",
          f);
}
