/* import: field records -> a scenario file, its profile CSVs and the recorded series beside it
 * (`der-sim import`, docs/incidents.md "From records to a scenario"). The records are a CSV of
 * site measurements (time, grid_w, pv_w, battery_w or <battery>_w, soc or <battery>_soc,
 * evse_w, boiler_w, load_w); the site's load comes from the power balance when not given, gaps
 * are reported and filled by a documented rule. Writes only into out_dir; reads no clock. */
#ifndef DERLOOP_IMPORT_H
#define DERLOOP_IMPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct import_opts {
    const char *csv;         /* the records */
    const char *site_json;   /* NULL, or der-headend export's site.json: asset ids, ratings,
                                dispatches (as dispatch events), offline spans (as faults) */
    const char *out_dir;     /* created if missing; scenario.json and the CSVs go here */
    const char *name;        /* the scenario's name; NULL = "import" */
    const char *tz;          /* IANA zone of stamps without an offset; NULL = none */
    const char *time_format; /* NULL/"auto", "iso", "unix_s", "unix_ms" */
    const char *strategy;    /* the replay's gateway strategy; NULL = "net_zero" */
    int64_t step_ms;         /* the run's step, > 0 */
    int64_t linear_gap_ms;   /* gaps up to this are interpolated linearly, longer ones held */
    int64_t max_gap_ms;      /* > 0: a longer gap is an error */
    double capacity_kwh;     /* > 0: every battery's capacity; else estimated from SoC */
};

/* Reads the records, writes out_dir/scenario.json, load.csv, pv.csv, ... and field.csv, and
 * prints what it found (records, interval, span, gaps per series, estimates) to `report`.
 * Returns 0, -EINVAL (bad records or options: err names the file, line and value), -ENOENT
 * or -EIO (files) or -ENOMEM. */
int import_records(const struct import_opts *o, FILE *report, char *err, size_t errlen);

#endif
