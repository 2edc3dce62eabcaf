/* fidelity: how closely a replay follows the field records it was made from. The recorded
 * series of a scenario's "field" block (docs/scenario-format.md) are read from its CSV,
 * resampled on the run's steps for plots (linear between recorded samples, none outside them or
 * where a cell is empty), and each recorded sample is compared with the replay's grid power,
 * SoC and battery power at the end of the first step at or after it: RMSE, bias and correlation
 * (the field_* KPIs of kpi.h); and the recorded grid power's oscillation against the replay's
 * taken at the same instants (field_osc_*, field_replay_osc_*), both resampled onto the record's
 * median interval first (a real gateway's telemetry is not evenly spaced; the rule is in kpi.c).
 * fidelity_open returns an object the caller owns (fidelity_free). */
#ifndef DERLOOP_FIDELITY_H
#define DERLOOP_FIDELITY_H

#include <stddef.h>
#include <stdint.h>

#include "reports/kpi.h"
#include "sim/scenario/scenario.h"

/* The series compared, in KPI order (each has rmse, bias, corr in kpi.h). */
enum fidelity_series { FID_GRID_W, FID_SOC, FID_BATTERY_W, FID_COUNT };

const char *fidelity_series_name(int i); /* "grid_w", "soc", "battery_w" */

struct fidelity;

/* The field series of sc (its "field" block), or of csv_path (a field CSV whose columns are
 * named like the series) when it is not NULL. *out = NULL and 0 when there is neither; -ENOENT
 * or -EINVAL with err ("FILE:LINE: message") when the CSV cannot be read, or it has none of
 * the series. */
int fidelity_open(const struct scenario *sc, const char *csv_path, struct fidelity **out, char *err,
                  size_t errlen);
void fidelity_free(struct fidelity *f);

/* A recorded series resampled at scenario time t_ms: NaN where there is no record. */
double fidelity_field_at(struct fidelity *f, int series, int64_t t_ms);

/* The replay's values at scenario time t_ms (the end of a step): every recorded sample at or
 * before t_ms not yet compared is compared with them. */
void fidelity_step(struct fidelity *f, int64_t t_ms, const double sim[FID_COUNT]);

/* Fills the field_* KPIs (NaN for a series never compared, and for a correlation without
 * variance on either side). */
void fidelity_result(const struct fidelity *f, struct kpi_set *k);

#endif
