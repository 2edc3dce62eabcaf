/* report: report.html, one self-contained page per run (styles inline, plots embedded as
 * base64 PNG data URIs, no script, no external resource), with sections under stable ids:
 * summary, kpis, expectations, baseline, plots, events, digest. Also the small HTML helpers
 * that compare and sweep pages share. Everything written is owned by the caller's files. */
#ifndef DERLOOP_REPORT_H
#define DERLOOP_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "reports/result.h"
#include "sim/scenario/scenario.h"

/* Writes `path` for the result of the run in `dir` (its events.log and plots/). 0 or -errno
 * with err. */
int report_write(const char *path, const char *dir, const struct scenario *sc,
                 const struct experiment_result *res, char *err, size_t errlen);

/* Helpers for pages of our own. */
void report_page_begin(FILE *f, const char *title);
void report_page_end(FILE *f);
void report_escape(FILE *f, const char *s);
/* <img> with the PNG at png_path as a data URI; returns 0, or -errno when it cannot be read. */
int report_embed_png(FILE *f, const char *png_path, const char *alt);

#endif
