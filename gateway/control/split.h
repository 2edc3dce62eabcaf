/* split: divides a site dispatch (W, signed: + discharge/export direction as the caller
 * defines) across assets by a policy: proportional to capacity (equal when any capacity is
 * missing), equal, SoC balancing, least modelled loss, or a priority order; each asset clamped
 * to [min_w, max_w] with the remainder handed to the others, then rounded to a resolution by
 * largest remainder so the parts sum to the (rounded) total whenever feasible.
 * Pure functions; the caller owns every array. docs/split.md has the rules and examples. */
#ifndef DERLOOP_SPLIT_H
#define DERLOOP_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#define SPLIT_MAX_ASSETS 64 /* n above this is -EINVAL (the gateway has at most 32 devices) */

struct split_asset {
    double capacity;     /* weight (e.g. Wh or W rating); <= 0 means unknown */
    double min_w, max_w; /* limits, min_w <= max_w (a charge limit is a negative min_w) */
};

enum split_policy {
    SPLIT_POLICY_CAPACITY, /* proportional to capacity (the default) */
    SPLIT_POLICY_EQUAL,
    SPLIT_POLICY_SOC_BALANCE, /* drive the SoCs together (docs/split.md) */
    SPLIT_POLICY_LOSS_MIN,    /* least loss under the documented loss model */
    SPLIT_POLICY_PRIORITY,    /* fill in rank order */
    SPLIT_POLICY_COUNT
};

/* The policy's name in configuration ("capacity", "equal", "soc_balance", "loss_min",
 * "priority"); split_policy_parse returns the policy or -1 for an unknown name. */
const char *split_policy_name(enum split_policy p);
int split_policy_parse(const char *name);

struct split_opts {
    enum split_policy policy;
    double resolution_w;  /* 0 = no rounding */
    double soc_horizon_s; /* soc_balance: the time over which SoCs are driven together (> 0) */
    /* Per asset (n entries each), NULL = unknown for all: */
    const double *soc;      /* soc_balance: state of charge 0..1; NaN = unknown (taken as 0.5) */
    const double *rating_w; /* loss_min: converter rating; <= 0 = max(|min_w|, |max_w|) */
    const int *rank;        /* priority: lower ranks are filled first (ties by index) */
};

/* loss_min's model of one asset of rating_w (<= 0: max(|min_w|, |max_w|)) at p_w (W): 0 at
 * 0 W, else a standby share of its rating plus a quadratic conversion term (docs/split.md). */
#define SPLIT_LOSS_STANDBY   0.005 /* x rating, whenever the converter runs */
#define SPLIT_LOSS_QUADRATIC 0.03  /* x rating at full power, x (p / rating)^2 below it */
double split_loss_w(const struct split_asset *a, double rating_w, double p_w);

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

/* n >= 1; alloc_w and flags (may be NULL) have n entries. Returns 0, or -EINVAL for bad
 * arguments (n == 0 or > SPLIT_MAX_ASSETS, a NaN, min > max, an unknown policy,
 * resolution < 0, soc_balance without a horizon > 0). No allocation. */
int split_dispatch_policy(const struct split_opts *o, const struct split_asset *a, size_t n,
                          double total_w, double *alloc_w, uint8_t *flags,
                          struct split_result *res);

/* The capacity policy: split_dispatch_policy with {SPLIT_POLICY_CAPACITY, resolution_w}. */
int split_dispatch(const struct split_asset *a, size_t n, double total_w, double resolution_w,
                   double *alloc_w, uint8_t *flags, struct split_result *res);

#endif
