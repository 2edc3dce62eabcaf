/* Unit tests for reports/optimum.c: small horizons whose optimum is computed by hand in each test
 * (two-price day, a spread that does not pay the losses, peak shaving flat to the average and
 * energy-limited, an import limit that cannot be held, soc_final, two batteries, the SoC derate,
 * negative prices without loss dumping), plus the aggregation and percentage helpers. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "reports/optimum.h"

#define HOURS     24
#define COST_TOL  1e-6 /* currency */
#define POWER_TOL 1e-3 /* W */

static double net_w[HOURS], p_imp[HOURS], p_exp[HOURS];

/* 10 kWh, 5 kW both ways, eta 0.95 each way, window [0, 1], no derate. */
static struct optimum_battery battery(double soc_init)
{
    struct optimum_battery b = {
        .capacity_wh = 10000.0,
        .soc_init = soc_init,
        .soc_min = 0.0,
        .soc_max = 1.0,
        .max_charge_w = 5000.0,
        .max_discharge_w = 5000.0,
        .eta_charge = 0.95,
        .eta_discharge = 0.95,
    };
    return b;
}

/* A day of hours: 2 kW all day, p_low for hours [0, 8), p_high after; export pays 0. */
static struct optimum_problem two_price_day(double p_low, double p_high,
                                            const struct optimum_battery *b, size_t nb)
{
    for (int h = 0; h < HOURS; h++) {
        net_w[h] = 2000.0;
        p_imp[h] = h < 8 ? p_low : p_high;
        p_exp[h] = 0.0;
    }
    struct optimum_problem pb = {
        .objective = OPTIMUM_MIN_COST,
        .n = HOURS,
        .dt_s = 3600.0,
        .net_load_w = net_w,
        .import_price = p_imp,
        .export_price = p_exp,
        .batteries = b,
        .n_batteries = nb,
    };
    return pb;
}

static double sum(const double *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return s;
}

/* Night 0.10, day 0.30. The battery starts empty and must end empty: fill it at night
 * (10 kWh stored = 10 / 0.95 kWh bought at 0.10), give 9.5 kWh back by day at 0.30. The day's
 * 32 kWh of load takes all of it without export, so
 *   savings = 9.5 x (0.30 - 0.10 / 0.95^2) = 2.85 - 1.0526316 = 1.7973684. */
static void test_two_price_day(void)
{
    struct optimum_battery b = battery(0.0);
    struct optimum_problem pb = two_price_day(0.10, 0.30, &b, 1);
    struct optimum_result r;
    double bat[HOURS] = {0}, e[HOURS] = {0}, grid[HOURS] = {0};
    struct optimum_schedule s = {.battery_w = bat, .energy_wh = e, .grid_w = grid};
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, &s, err, sizeof err), 0);
    double want = 9.5 * (0.30 - 0.10 / (0.95 * 0.95));
    CU_ASSERT_DOUBLE_EQUAL(r.baseline_cost, 8 * 2 * 0.10 + 16 * 2 * 0.30, COST_TOL);
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_savings, want, COST_TOL);
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_cost, r.baseline_cost - want, COST_TOL);
    CU_ASSERT_DOUBLE_EQUAL(r.charged_wh, 10000.0 / 0.95, 1e-3);
    CU_ASSERT_DOUBLE_EQUAL(r.discharged_wh, 9500.0, 1e-3);
    CU_ASSERT_DOUBLE_EQUAL(e[7], 10000.0, 1e-3); /* full at the end of the night */
    CU_ASSERT_DOUBLE_EQUAL(e[HOURS - 1], 0.0, 1e-3);
    CU_ASSERT_EQUAL(r.n_binaries, 0);
    for (int h = 0; h < HOURS; h++) {
        CU_ASSERT(grid[h] >= -POWER_TOL); /* nothing exported */
        CU_ASSERT_DOUBLE_EQUAL(grid[h], net_w[h] - bat[h], 1e-9);
    }
    CU_ASSERT(sum(bat, 8) < 0.0);      /* charges by night ... */
    CU_ASSERT(sum(bat + 8, 16) > 0.0); /* ... discharges by day */
    CU_ASSERT(r.solve_s >= 0.0);
    CU_ASSERT_EQUAL(r.interior_point, 0);
}

/* The same day at 30 s (2880 intervals, past the simplex's size): the interior-point method
 * must find the same savings, and the idle baseline is unchanged by the resolution. */
static void test_two_price_day_interior(void)
{
    enum { N = 2880 };
    static double fine_net[N], fine_imp[N];
    for (int i = 0; i < N; i++) {
        fine_net[i] = 2000.0;
        fine_imp[i] = i < N / 3 ? 0.10 : 0.30;
    }
    struct optimum_battery b = battery(0.0);
    struct optimum_problem pb = {
        .n = N,
        .dt_s = 30.0,
        .net_load_w = fine_net,
        .import_price = fine_imp,
        .batteries = &b,
        .n_batteries = 1,
    };
    struct optimum_result r;
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, NULL, NULL, 0), 0);
    CU_ASSERT_EQUAL(r.interior_point, 1);
    CU_ASSERT_DOUBLE_EQUAL(r.baseline_cost, 11.2, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_savings, 9.5 * (0.30 - 0.10 / (0.95 * 0.95)), 1e-5);
    CU_ASSERT_DOUBLE_EQUAL(r.charged_wh, 10000.0 / 0.95, 0.01);
    CU_ASSERT_EQUAL(r.n_binaries, 0);
}

/* 0.10 vs 0.11: a kWh bought at night costs 0.10 / 0.9025 = 0.1108 by day, more than the day
 * price, so the battery stays idle and the optimum is the baseline. */
static void test_spread_below_losses(void)
{
    struct optimum_battery b = battery(0.5);
    struct optimum_problem pb = two_price_day(0.10, 0.11, &b, 1);
    struct optimum_result r;
    double bat[HOURS] = {0};
    struct optimum_schedule s = {.battery_w = bat};
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, &s, NULL, 0), 0);
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_savings, 0.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(r.charged_wh, 0.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(r.discharged_wh, 0.0, 1e-6);
    for (int h = 0; h < HOURS; h++)
        CU_ASSERT_DOUBLE_EQUAL(bat[h], 0.0, 1e-6);
}

/* Four hours of 2, 8, 4, 6 kW (mean 5) with the battery half full and ending where it began.
 * Lossless, the lowest peak is the window's mean: 5 kW. With eta 0.95 each way the flat level
 * P stores 0.95 ((P - 2) + (P - 4)) and must take (8 - P) + (6 - P) out / 0.95:
 *   0.9025 (2P - 6) = 14 - 2P  ->  P = 19.415 / 3.805 = 5.1024967 kW. */
static void test_peak_flat_to_mean(void)
{
    double load[4] = {2000.0, 8000.0, 4000.0, 6000.0};
    struct optimum_battery b = battery(0.5);
    b.eta_charge = b.eta_discharge = 1.0;
    struct optimum_problem pb = {
        .objective = OPTIMUM_MIN_PEAK,
        .n = 4,
        .dt_s = 3600.0,
        .net_load_w = load,
        .batteries = &b,
        .n_batteries = 1,
    };
    struct optimum_result r;
    double grid[4] = {0}, e[4] = {0};
    struct optimum_schedule s = {.grid_w = grid, .energy_wh = e};
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, &s, NULL, 0), 0);
    CU_ASSERT_DOUBLE_EQUAL(r.peak_w, 5000.0, POWER_TOL);
    CU_ASSERT_DOUBLE_EQUAL(r.baseline_peak_w, 8000.0, 0.0);
    for (int t = 0; t < 4; t++)
        CU_ASSERT_DOUBLE_EQUAL(grid[t], 5000.0, POWER_TOL);
    CU_ASSERT_DOUBLE_EQUAL(e[3], 5000.0, 1e-3);
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_cost, 0.0, 0.0); /* no prices */

    b.eta_charge = b.eta_discharge = 0.95;
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, &s, NULL, 0), 0);
    CU_ASSERT_DOUBLE_EQUAL(r.peak_w, 19415.0 / 3.805, POWER_TOL);
    CU_ASSERT(e[3] >= 5000.0 - 1e-3);
}

/* 2 kW all day, 6 kW for hours 8..11. A 5 kWh pack, full and to end full, gives 5 x 0.95 =
 * 4.75 kWh: spread over the four hours the peak falls by 1.1875 kW to 4.8125 kW (recharging
 * 5 / 0.95 kWh in the 12 hours after needs far less than the 2.8 kW of headroom). An import
 * limit of 4.5 kW cannot be held (-EDOM naming that lowest peak); 5 kW can, and the cost
 * optimum then stays under it. */
static void test_peak_energy_limited(void)
{
    for (int h = 0; h < HOURS; h++) {
        net_w[h] = (h >= 8 && h < 12) ? 6000.0 : 2000.0;
        p_imp[h] = 0.2;
    }
    struct optimum_battery b = battery(1.0);
    b.capacity_wh = 5000.0;
    struct optimum_problem pb = {
        .objective = OPTIMUM_MIN_PEAK,
        .n = HOURS,
        .dt_s = 3600.0,
        .net_load_w = net_w,
        .import_price = p_imp,
        .batteries = &b,
        .n_batteries = 1,
    };
    struct optimum_result r;
    double grid[HOURS] = {0};
    struct optimum_schedule s = {.grid_w = grid};
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, &s, err, sizeof err), 0);
    double want = 6000.0 - 5000.0 * 0.95 / 4.0;
    CU_ASSERT_DOUBLE_EQUAL(r.peak_w, want, POWER_TOL);
    /* the cheapest lowest-peak schedule pays only the round-trip loss: 5 / 0.95 kWh bought
     * back for 4.75 kWh not bought, at one price */
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_savings, 0.2 * (4.75 - 5.0 / 0.95), COST_TOL);

    pb.objective = OPTIMUM_MIN_COST;
    pb.has_import_limit = 1;
    pb.import_limit_w = 4500.0;
    CU_ASSERT_EQUAL(optimum_solve(&pb, &r, &s, err, sizeof err), -EDOM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "import limit 4500.0 W cannot be held"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "4812.5 W"));
    CU_ASSERT_DOUBLE_EQUAL(r.peak_w, want, POWER_TOL);

    pb.import_limit_w = 5000.0;
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, &s, err, sizeof err), 0);
    for (int h = 0; h < HOURS; h++)
        CU_ASSERT(grid[h] <= 5000.0 + POWER_TOL);
    /* shaving 4 kWh AC off the window, at one price, costs the loss 4 / 0.9025 - 4 */
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_savings, -0.2 * (4.0 / 0.9025 - 4.0), COST_TOL);
}

/* Day first (hours 0..15 at 0.30), night after (0.10), the battery half full (5 kWh).
 * Free end (floor 0): sell all 5 kWh by day: 4.75 kWh x 0.30 = 1.425.
 * Default end (= soc_init): the same by day, bought back by night: 1.425 - 5 / 0.95 x 0.10.
 * Floor 0.8 with one flat price: only the forced charge, 3 kWh stored: -3 / 0.95 x 0.10. */
static void test_soc_final(void)
{
    struct optimum_battery b = battery(0.5);
    struct optimum_problem pb = two_price_day(0.30, 0.10, &b, 1);
    for (int h = 0; h < HOURS; h++)
        p_imp[h] = h < 16 ? 0.30 : 0.10;
    struct optimum_result r;
    double e[HOURS] = {0};
    struct optimum_schedule s = {.energy_wh = e};

    b.soc_final_set = 1;
    b.soc_final_min = 0.0;
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, &s, NULL, 0), 0);
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_savings, 4.75 * 0.30, COST_TOL);
    CU_ASSERT_DOUBLE_EQUAL(e[HOURS - 1], 0.0, 1e-3);

    b.soc_final_set = 0;
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, &s, NULL, 0), 0);
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_savings, 4.75 * 0.30 - 5.0 / 0.95 * 0.10, COST_TOL);
    CU_ASSERT_DOUBLE_EQUAL(e[HOURS - 1], 5000.0, 1e-3);

    for (int h = 0; h < HOURS; h++)
        p_imp[h] = 0.10;
    b.soc_final_set = 1;
    b.soc_final_min = 0.8;
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, &s, NULL, 0), 0);
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_savings, -3.0 / 0.95 * 0.10, COST_TOL);
    CU_ASSERT_DOUBLE_EQUAL(e[HOURS - 1], 8000.0, 1e-3);

    /* out of reach: 1 h at 1 kW cannot store 3 kWh */
    pb.n = 1;
    b.max_charge_w = 1000.0;
    char err[256] = "";
    CU_ASSERT_EQUAL(optimum_solve(&pb, &r, NULL, err, sizeof err), -EDOM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot reach soc_final_min"));
}

/* The two-price day with a 5 kWh pack at eta 0.95 and a lossless 5 kWh pack: each fills by
 * night and empties by day, 4.75 x (0.30 - 0.10 / 0.9025) + 5 x (0.30 - 0.10). */
static void test_two_batteries(void)
{
    struct optimum_battery b[2] = {battery(0.0), battery(0.0)};
    b[0].capacity_wh = b[1].capacity_wh = 5000.0;
    b[1].eta_charge = b[1].eta_discharge = 1.0;
    struct optimum_problem pb = two_price_day(0.10, 0.30, b, 2);
    struct optimum_result r;
    double bat[2 * HOURS] = {0}, e[2 * HOURS] = {0};
    struct optimum_schedule s = {.battery_w = bat, .energy_wh = e};
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, &s, NULL, 0), 0);
    double want = 4.75 * (0.30 - 0.10 / 0.9025) + 5.0 * (0.30 - 0.10);
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_savings, want, COST_TOL);
    CU_ASSERT_DOUBLE_EQUAL(e[7 * 2 + 0], 5000.0, 1e-3);
    CU_ASSERT_DOUBLE_EQUAL(e[7 * 2 + 1], 5000.0, 1e-3);
    CU_ASSERT_DOUBLE_EQUAL(r.charged_wh, 5000.0 / 0.95 + 5000.0, 1e-3);
    for (int h = 0; h < HOURS; h++) /* no pack feeds the other */
        CU_ASSERT(!(bat[2 * h] > POWER_TOL && bat[2 * h + 1] < -POWER_TOL) &&
                  !(bat[2 * h] < -POWER_TOL && bat[2 * h + 1] > POWER_TOL));
}

/* SoC derate: band 0.8, half full, 5 kW, 2 h at 0.30 with 10 kW of load and a free end.
 * Hour 0 may give 5 x 0.5 / 0.8 = 3.125 kW, leaving 5 - 3.125 / 0.95 = 1.7105263 kWh; hour 1
 * may give 5 x 0.17105263 / 0.8 = 1.0690789 kW (the energy would allow 1.625). Taking less in
 * hour 0 only lowers the total (d0 + 0.625 (5 - d0 / 0.95) grows with d0). */
static void test_soc_derate(void)
{
    double load[2] = {10000.0, 10000.0}, pr[2] = {0.30, 0.30};
    struct optimum_battery b = battery(0.5);
    b.soc_low_band = 0.8;
    b.soc_final_set = 1;
    b.soc_final_min = 0.0;
    struct optimum_problem pb = {
        .n = 2,
        .dt_s = 3600.0,
        .net_load_w = load,
        .import_price = pr,
        .batteries = &b,
        .n_batteries = 1,
    };
    struct optimum_result r;
    double bat[2] = {0};
    struct optimum_schedule s = {.battery_w = bat};
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, &s, NULL, 0), 0);
    double d1 = 5.0 * (5.0 - 3.125 / 0.95) / 8.0;
    CU_ASSERT_DOUBLE_EQUAL(bat[0], 3125.0, POWER_TOL);
    CU_ASSERT_DOUBLE_EQUAL(bat[1], 1000.0 * d1, POWER_TOL);
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_savings, 0.30 * (3.125 + d1), COST_TOL);
}

/* Negative export price, PV surplus 5 kW, battery full and to end full. The LP alone would
 * charge and discharge at once (c = d / 0.9025 stores nothing and absorbs 0.0975 c): loss
 * dumping. One hour: the guard leaves the battery idle, savings 0. Two hours: discharging in
 * hour 0 and recharging in hour 1 is a real schedule: c1 = 5 kW, d0 = 0.9025 x 5 = 4.5125 kW,
 * savings 0.10 x (5 - 4.5125) = 0.04875. */
static void test_no_loss_dumping(void)
{
    double load[2] = {-5000.0, -5000.0}, pi[2] = {0.2, 0.2}, pe[2] = {-0.10, -0.10};
    struct optimum_battery b = battery(1.0);
    struct optimum_problem pb = {
        .n = 1,
        .dt_s = 3600.0,
        .net_load_w = load,
        .import_price = pi,
        .export_price = pe,
        .batteries = &b,
        .n_batteries = 1,
    };
    struct optimum_result r;
    double bat[2] = {0};
    struct optimum_schedule s = {.battery_w = bat};
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, &s, NULL, 0), 0);
    CU_ASSERT_DOUBLE_EQUAL(r.baseline_cost, -5.0 * -0.10, COST_TOL);
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_savings, 0.0, COST_TOL);
    CU_ASSERT_DOUBLE_EQUAL(r.charged_wh, 0.0, 1e-3);
    CU_ASSERT(r.n_binaries >= 1);

    pb.n = 2;
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, &s, NULL, 0), 0);
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_savings, 0.10 * (5.0 - 4.5125), COST_TOL);
    CU_ASSERT_DOUBLE_EQUAL(bat[0], 4512.5, POWER_TOL);
    CU_ASSERT_DOUBLE_EQUAL(bat[1], -5000.0, POWER_TOL);
    CU_ASSERT_DOUBLE_EQUAL(r.charged_wh, 5000.0, 1e-3);
}

/* Paid to import (-0.05) and export worth 0: the battery charges flat out, 5 kWh bought for
 * -0.25; the LP stays bounded and never imports and exports at once. */
static void test_negative_import_price(void)
{
    double load[1] = {0.0}, pi[1] = {-0.05};
    struct optimum_battery b = battery(0.5);
    struct optimum_problem pb = {
        .n = 1,
        .dt_s = 3600.0,
        .net_load_w = load,
        .import_price = pi,
        .batteries = &b,
        .n_batteries = 1,
    };
    struct optimum_result r;
    double grid[1] = {0};
    struct optimum_schedule s = {.grid_w = grid};
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, &s, NULL, 0), 0);
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_cost, -0.25, COST_TOL);
    CU_ASSERT_DOUBLE_EQUAL(grid[0], 5000.0, POWER_TOL);
}

/* A short last interval weighs by its own length: 1 h at 1 kW then 30 min at 1 kW, 0.2. */
static void test_last_interval(void)
{
    double load[2] = {1000.0, 1000.0}, pi[2] = {0.2, 0.2};
    struct optimum_problem pb = {
        .n = 2,
        .dt_s = 3600.0,
        .last_dt_s = 1800.0,
        .net_load_w = load,
        .import_price = pi,
    };
    struct optimum_result r;
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, NULL, NULL, 0), 0);
    CU_ASSERT_DOUBLE_EQUAL(r.baseline_cost, 0.2 * 1.5, COST_TOL);
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_cost, 0.2 * 1.5, COST_TOL);
}

static void test_bad_input(void)
{
    struct optimum_battery b = battery(0.5);
    struct optimum_problem pb = two_price_day(0.1, 0.3, &b, 1);
    struct optimum_result r;
    char err[256] = "";
    b.eta_charge = 0.0;
    CU_ASSERT_EQUAL(optimum_solve(&pb, &r, NULL, err, sizeof err), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "batteries[0]: need eta_charge"));
    b.eta_charge = 0.95;
    net_w[3] = NAN;
    CU_ASSERT_EQUAL(optimum_solve(&pb, &r, NULL, err, sizeof err), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "net_load_w[3]"));
    net_w[3] = 0.0;
    pb.n = OPTIMUM_MAX_INTERVALS + 1;
    CU_ASSERT_EQUAL(optimum_solve(&pb, &r, NULL, err, sizeof err), -E2BIG);
    pb.n = 0;
    CU_ASSERT_EQUAL(optimum_solve(&pb, &r, NULL, err, sizeof err), -EINVAL);
}

/* Terminal valuation: flat import 0.30, nothing for export, the end valued at 0.10. Keeping a
 * stored kWh is worth 0.10 x 0.95, serving the load with it 0.30 x 0.95: the optimum empties
 * the battery (5 kWh stored, 4.75 kWh delivered) and pays for the deficit at 0.10 / 0.95:
 *   savings = 4.75 x 0.30 - 5 x 0.10 / 0.95. With the default end floor it saves nothing. */
static void test_terminal_value(void)
{
    struct optimum_battery b = battery(0.5);
    struct optimum_problem pb = two_price_day(0.30, 0.30, &b, 1);
    struct optimum_result r;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, NULL, err, sizeof err), 0);
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_savings, 0.0, COST_TOL);
    pb.terminal_valued = 1;
    pb.terminal_price = 0.10;
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, NULL, err, sizeof err), 0);
    double deficit = -5.0 * 0.10 / 0.95;
    CU_ASSERT_DOUBLE_EQUAL(r.end_value, deficit, COST_TOL);
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_savings, 4.75 * 0.30 + deficit, COST_TOL);
    CU_ASSERT_DOUBLE_EQUAL(r.optimal_savings, r.baseline_cost - r.optimal_cost + r.end_value,
                           1e-12);
    /* the rule itself: a surplus earns eta_d x price, a deficit costs price / eta_c */
    CU_ASSERT_DOUBLE_EQUAL(optimum_terminal_value(&b, 1, 7000.0, 0.2), 2.0 * 0.95 * 0.2, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(optimum_terminal_value(&b, 1, 4000.0, 0.2), -1.0 / 0.95 * 0.2, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(optimum_terminal_value(&b, 1, 7000.0, -0.2), 0.0, 0.0);
}

/* An independent check of the LP: a brute-force dynamic programme over the stored energy in
 * 10 Wh steps, on six hours with import and export at different prices, a SoC window, losses
 * and the end valued. Every DP schedule is one the LP may take, so the LP is at most the DP,
 * and the DP's grid is fine enough to come within a cent of it. */
#define DP_T     6
#define DP_STEP  0.01 /* kWh */
#define DP_LEVEL 401  /* 0 .. 4 kWh */
static double dp_cost(double net_kw, double c_kw, double d_kw, double pi, double pe)
{
    double g = net_kw + c_kw - d_kw; /* 1 h intervals: kW = kWh */
    return g > 0 ? pi * g : pe * g;
}
static void test_against_dp(void)
{
    const double net[DP_T] = {1.0, -1.5, 2.0, 0.5, 3.0, 1.0};
    const double pi[DP_T] = {0.10, 0.10, 0.40, 0.20, 0.50, 0.30},
                 pe[DP_T] = {0.05, 0.05, 0.05, 0.05, 0.05, 0.05};
    const double cap = 4.0, cmax = 2.0, dmax = 2.0, eta = 0.9, lo = 0.1, hi = 0.9, init = 0.5;
    const double tprice = 0.10;
    struct optimum_battery b = {.capacity_wh = cap * 1000,
                                .soc_init = init,
                                .soc_min = lo,
                                .soc_max = hi,
                                .max_charge_w = cmax * 1000,
                                .max_discharge_w = dmax * 1000,
                                .eta_charge = eta,
                                .eta_discharge = eta};
    double nw[DP_T];
    for (int t = 0; t < DP_T; t++)
        nw[t] = net[t] * 1000;
    struct optimum_problem pb = {.objective = OPTIMUM_MIN_COST,
                                 .n = DP_T,
                                 .dt_s = 3600,
                                 .net_load_w = nw,
                                 .import_price = pi,
                                 .export_price = pe,
                                 .batteries = &b,
                                 .n_batteries = 1,
                                 .terminal_valued = 1,
                                 .terminal_price = tprice};
    struct optimum_result r;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &r, NULL, err, sizeof err), 0);
    double lp = r.optimal_cost - r.end_value;

    /* DP: best[i] = the lowest cost to reach level i; end value added at the end */
    static double best[DP_LEVEL], next[DP_LEVEL];
    int i0 = (int)lround(init * cap / DP_STEP), ilo = (int)lround(lo * cap / DP_STEP),
        ihi = (int)lround(hi * cap / DP_STEP);
    for (int i = 0; i < DP_LEVEL; i++)
        best[i] = i == i0 ? 0 : INFINITY;
    for (int t = 0; t < DP_T; t++) {
        for (int j = 0; j < DP_LEVEL; j++) {
            next[j] = INFINITY;
            if (j < ilo || j > ihi)
                continue;
            for (int i = ilo; i <= ihi; i++) {
                if (!isfinite(best[i]))
                    continue;
                double de = (j - i) * DP_STEP, c = 0, d = 0;
                if (de >= 0)
                    c = de / eta;
                else
                    d = -de * eta;
                if (c > cmax + 1e-12 || d > dmax + 1e-12)
                    continue;
                next[j] = fmin(next[j], best[i] + dp_cost(net[t], c, d, pi[t], pe[t]));
            }
        }
        memcpy(best, next, sizeof best);
    }
    double dp = INFINITY;
    for (int j = ilo; j <= ihi; j++) {
        double dk = (j - i0) * DP_STEP;
        double v = dk > 0 ? dk * eta * tprice : dk / eta * tprice;
        dp = fmin(dp, best[j] - v);
    }
    CU_ASSERT(lp <= dp + 1e-9);
    CU_ASSERT(dp - lp < 0.01);
}

static size_t progress_calls, progress_done;
static void on_progress(void *ctx, size_t done, size_t n)
{
    (void)ctx;
    (void)n;
    progress_calls++;
    progress_done = done;
}

/* Ten days of hours in chunks of two days with one looked ahead: a daily cycle, so the chunks
 * find what the whole horizon does (within a cent), never more; the minimum peak likewise;
 * a budget that is already spent gives -ETIME and says so. */
static void test_chunks(void)
{
    enum { N = 240 };
    static double net[N], pi[N], pe[N];
    for (int t = 0; t < N; t++) {
        int h = t % 24;
        net[t] = 1500.0 + (h >= 17 && h < 21 ? 3000.0 : 0.0) + 100.0 * (t % 7);
        pi[t] = h < 6 ? 0.10 : h >= 17 && h < 21 ? 0.40 : 0.25;
        pe[t] = 0.05;
    }
    struct optimum_battery b = battery(0.5);
    struct optimum_problem pb = {.objective = OPTIMUM_MIN_COST,
                                 .n = N,
                                 .dt_s = 3600,
                                 .net_load_w = net,
                                 .import_price = pi,
                                 .export_price = pe,
                                 .batteries = &b,
                                 .n_batteries = 1,
                                 .terminal_valued = 1,
                                 .terminal_price = 0.10};
    struct optimum_result whole, part;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &whole, NULL, err, sizeof err), 0);
    struct optimum_long_opts lo = {
        .chunk_n = 48, .lookahead_n = 24, .progress = on_progress, .ctx = NULL};
    progress_calls = 0;
    static double grid[N];
    struct optimum_schedule s = {.grid_w = grid};
    CU_ASSERT_EQUAL_FATAL(optimum_solve_long(&pb, &lo, &part, &s, err, sizeof err), 0);
    CU_ASSERT_EQUAL(part.chunks, 5);
    CU_ASSERT_EQUAL(progress_calls, 5);
    CU_ASSERT_EQUAL(progress_done, N);
    CU_ASSERT_DOUBLE_EQUAL(part.baseline_cost, whole.baseline_cost, 1e-9);
    CU_ASSERT(part.optimal_savings <= whole.optimal_savings + 1e-6);
    CU_ASSERT(part.optimal_savings > whole.optimal_savings - 0.01);
    double cost = 0;
    for (int t = 0; t < N; t++)
        cost += (grid[t] > 0 ? pi[t] : pe[t]) * grid[t] / 1000.0;
    CU_ASSERT_DOUBLE_EQUAL(cost, part.optimal_cost, 1e-9);
    /* up to chunk_n intervals it is the one exact solve */
    lo.chunk_n = N;
    CU_ASSERT_EQUAL_FATAL(optimum_solve_long(&pb, &lo, &part, NULL, err, sizeof err), 0);
    CU_ASSERT_EQUAL(part.chunks, 1);
    CU_ASSERT_DOUBLE_EQUAL(part.optimal_savings, whole.optimal_savings, 1e-9);
    /* the peak: never below the whole horizon's minimum, close to it */
    pb.objective = OPTIMUM_MIN_PEAK;
    CU_ASSERT_EQUAL_FATAL(optimum_solve(&pb, &whole, NULL, err, sizeof err), 0);
    lo.chunk_n = 48;
    CU_ASSERT_EQUAL_FATAL(optimum_solve_long(&pb, &lo, &part, NULL, err, sizeof err), 0);
    CU_ASSERT(part.peak_w >= whole.peak_w - POWER_TOL);
    CU_ASSERT(part.peak_w < whole.peak_w + 50.0);
    /* a budget already spent */
    lo.budget_s = 1e-9;
    CU_ASSERT_EQUAL(optimum_solve_long(&pb, &lo, &part, NULL, err, sizeof err), -ETIME);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "time budget"));
}

static void test_savings_pct(void)
{
    CU_ASSERT_DOUBLE_EQUAL(optimum_savings_vs_optimal_pct(0.9, 1.0), 90.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(optimum_savings_vs_optimal_pct(-0.5, 1.0), -50.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(optimum_savings_vs_optimal_pct(0.0, 0.0), 100.0, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(optimum_savings_vs_optimal_pct(0.0, 1e-9), 100.0, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(optimum_savings_vs_optimal_pct(-0.01, 0.0), 0.0, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(optimum_savings_vs_optimal_pct(0.2, -0.3), 100.0, 0.0);
}

static void test_aggregate(void)
{
    double in[5] = {1, 2, 3, 4, 5}, out[3];
    CU_ASSERT_EQUAL(optimum_aggregate_len(5, 2), 3);
    CU_ASSERT_EQUAL(optimum_aggregate_len(4, 2), 2);
    CU_ASSERT_EQUAL(optimum_aggregate(in, 5, 2, out, 3), 0);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 1.5, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 3.5, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(out[2], 5.0, 0.0);
    CU_ASSERT_EQUAL(optimum_aggregate(in, 5, 2, out, 2), -EINVAL);
    CU_ASSERT_EQUAL(optimum_aggregate(in, 5, 0, out, 0), -EINVAL);
}

static void test_from_params(void)
{
    struct battery_params p = {.capacity_wh = 8000.0,
                               .soc_init = 0.3,
                               .max_charge_w = 3000.0,
                               .max_discharge_w = 4000.0,
                               .eta_charge = 0.96,
                               .eta_discharge = 0.94,
                               .soc_low_band = 0.05,
                               .soc_high_band = 0.9};
    struct optimum_battery b;
    optimum_battery_from_params(&b, &p);
    CU_ASSERT_DOUBLE_EQUAL(b.capacity_wh, 8000.0, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(b.soc_max, 1.0, 0.0);
    CU_ASSERT_EQUAL(b.soc_final_set, 0);
    CU_ASSERT_DOUBLE_EQUAL(b.eta_discharge, 0.94, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(b.soc_high_band, 0.9, 0.0);
}

void test_register_optimum(void)
{
    CU_pSuite s = CU_add_suite("optimum", NULL, NULL);
    CU_add_test(s, "two-price day", test_two_price_day);
    CU_add_test(s, "two-price day, interior point", test_two_price_day_interior);
    CU_add_test(s, "spread below losses", test_spread_below_losses);
    CU_add_test(s, "peak flat to mean", test_peak_flat_to_mean);
    CU_add_test(s, "peak energy limited, import limit", test_peak_energy_limited);
    CU_add_test(s, "soc final", test_soc_final);
    CU_add_test(s, "two batteries", test_two_batteries);
    CU_add_test(s, "soc derate", test_soc_derate);
    CU_add_test(s, "no loss dumping", test_no_loss_dumping);
    CU_add_test(s, "negative import price", test_negative_import_price);
    CU_add_test(s, "short last interval", test_last_interval);
    CU_add_test(s, "bad input", test_bad_input);
    CU_add_test(s, "savings pct", test_savings_pct);
    CU_add_test(s, "aggregate", test_aggregate);
    CU_add_test(s, "from battery params", test_from_params);
    CU_add_test(s, "terminal valuation", test_terminal_value);
    CU_add_test(s, "against a brute-force DP", test_against_dp);
    CU_add_test(s, "chunks, progress, budget", test_chunks);
}
