/* split: divides a site dispatch (W, signed: + discharge/export direction as the caller
 * defines) across assets: proportional to capacity (equal when any capacity is missing), each
 * asset clamped to [min_w, max_w] with the remainder handed to the others, then rounded to a
 * resolution by largest remainder so the parts sum to the (rounded) total whenever feasible.
 * Pure function; the caller owns every array. docs/split.md has the rules and examples. */
#ifndef DERLOOP_SPLIT_H
#define DERLOOP_SPLIT_H

#include <stddef.h>
#include <stdint.h>

struct split_asset {
    double capacity;     /* weight (e.g. Wh or W rating); <= 0 means unknown */
    double min_w, max_w; /* limits, min_w <= max_w (a charge limit is a negative min_w) */
};

enum split_flag {
    SPLIT_AT_MIN = 1,     /* clamped to its minimum */
    SPLIT_AT_MAX = 2,     /* clamped to its maximum */
    SPLIT_ROUNDED_UP = 4, /* received a remainder unit in the rounding */
};

struct split_result {
    double requested_w;   /* the total asked for */
    double allocated_w;   /* the sum of the parts */
    double unallocated_w; /* requested - allocated: non-zero when infeasible or rounded */
    int equal_weights;    /* 1 when capacities were missing and the split was equal */
};

/* n >= 1; resolution_w >= 0 (0 = no rounding); alloc_w and flags (may be NULL) have n entries.
 * Returns 0, or -EINVAL for bad arguments (n == 0, a NaN, min > max). */
int split_dispatch(const struct split_asset *a, size_t n, double total_w, double resolution_w,
                   double *alloc_w, uint8_t *flags, struct split_result *res);

#endif
