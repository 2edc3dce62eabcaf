/* compare: `der-sim compare RUN_DIR...`: a side-by-side page of finished runs, their KPIs from
 * each kpis.json (with the difference to the first run) and plots of their series overlaid
 * (from each run's plots/data.csv). Reads the runs, writes only into out_dir. */
#ifndef DERLOOP_COMPARE_H
#define DERLOOP_COMPARE_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* Writes out_dir/compare.html, compare.csv and plots/. gnuplot NULL = from PATH; a missing
 * gnuplot leaves the plots out and says so in note. Returns 0 or -errno with err. */
int compare_write(const char *const *dirs, size_t n, const char *out_dir, const char *gnuplot,
                  char *note, size_t notelen, char *err, size_t errlen);

/* Loads DIR/kpis.json (NULL with err when it is missing or not JSON). Caller frees it. */
cJSON *compare_load_kpis(const char *dir, char *err, size_t errlen);

#endif
