/* field: what the scenario loader's files share (internal to sim/scenario/): the state of one
 * load, the error helper and the readers of one JSON field each.
 *
 * Every error is "FILE: PATH: message[, got VALUE]" written into the load's err, and every
 * function returning int returns 0 or -EINVAL (after writing the error). Paths are built in
 * SCN_PATH_MAX buffers by scn_pkey / scn_pidx and cut, never overflowed, when too long. */
#ifndef DERLOOP_SCN_FIELD_H
#define DERLOOP_SCN_FIELD_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct scenario;

/* What one load carries around: where errors go and what the file was. */
struct scn_ld {
    const char *file;
    char *err;
    size_t errlen;
    struct scenario *s;
    char dir[512]; /* the scenario file's directory, for CSV files */
};

#define SCN_PATH_MAX 256

/* "FILE: PATH: message[, got VALUE]" with VALUE printed as JSON (cut to a readable length);
 * got NULL: no value. Returns -EINVAL. */
int scn_fail(struct scn_ld *L, const char *path, const cJSON *got, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

const char *scn_pkey(char *buf, const char *path, const char *key); /* "path.key" (or "key") */
const char *scn_pidx(char *buf, const char *path, int i);           /* "path[i]" */
const cJSON *scn_item(const cJSON *obj, const char *key); /* obj NULL or key absent: NULL */

/* Rejects keys not in `keys` or `extra` (both NULL-terminated, either NULL) and duplicates. */
int scn_check_keys(struct scn_ld *L, const cJSON *obj, const char *path, const char *const *keys,
                   const char *const *extra);
int scn_need_object(struct scn_ld *L, const cJSON *j, const char *path);
int scn_valid_id(const char *s, size_t max); /* 1 when s matches [A-Za-z0-9._-]+, < max chars */

/* Bounds and flags of a number (scn_get_num) or a duration (scn_get_dur: B_MIN, B_MINX, B_REQ):
 * which ends apply and whether they are open. */
#define B_MIN  0x01u
#define B_MINX 0x02u /* exclusive */
#define B_MAX  0x04u
#define B_MAXX 0x08u
#define B_INT  0x10u
#define B_REQ  0x20u
#define B_1_3  0x40u /* 1 or 3 (phases) */
#define B_HZ   0x80u /* 50 or 60 */

/* An identifier (required) copied into out[max]. */
int scn_get_id(struct scn_ld *L, const cJSON *obj, const char *path, const char *key, char *out,
               size_t max);
/* A string; *out = NULL when absent and not required. Not copied: it lives in obj. */
int scn_get_str(struct scn_ld *L, const cJSON *obj, const char *path, const char *key, int required,
                const char **out);
/* A number with a default (used when absent and not B_REQ). */
int scn_get_num(struct scn_ld *L, const cJSON *obj, const char *path, const char *key, double dflt,
                double lo, double hi, unsigned fl, double *out);
/* A duration string ("15m") with a default in ms; lower bound in ms like scn_get_num. */
int scn_get_dur(struct scn_ld *L, const cJSON *obj, const char *path, const char *key,
                int64_t dflt_ms, int64_t lo_ms, unsigned fl, int64_t *out);

#endif
