/* decision: see decision.h.
 *
 * The CSV row has a fixed set of columns whatever the site looks like, so that decisions.csv
 * files of different sites and runs line up; the per-asset detail is packed into two fields
 * with separators that cannot occur in a number. Asset ids are sanitised on output (any of
 * , ; : = @ > " or a control character becomes '_') so a strange id cannot break the row. */
#include "gateway/control/decision.h"
#include "common/fmtnum.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const source_names[DSRC_COUNT] = {
    [DSRC_NONE] = "none",           [DSRC_OPTIMISATION] = "optimisation",
    [DSRC_SCHEDULED] = "scheduled", [DSRC_MANUAL] = "manual",
    [DSRC_SAFETY] = "safety",
};

static const char *const reason_names[DR_COUNT] = {
    [DR_NONFINITE] = "nonfinite",
    [DR_OFFLINE] = "offline",
    [DR_STALE] = "stale",
    [DR_SOC_INVALID] = "soc_invalid",
    [DR_SOC_FLOOR] = "soc_floor",
    [DR_SOC_CEILING] = "soc_ceiling",
    [DR_TEMP_STOP] = "temp_stop",
    [DR_TEMP_DERATE] = "temp_derate",
    [DR_TEMP_COLD] = "temp_cold",
    [DR_POWER_DEVICE] = "power_device",
    [DR_POWER_CONFIG] = "power_config",
    [DR_CURRENT] = "current",
    [DR_RATING] = "rating",
    [DR_RAMP] = "ramp",
    [DR_GRID_IMPORT] = "grid_import",
    [DR_GRID_EXPORT] = "grid_export",
};

const char *decision_source_name(int source)
{
    return source >= 0 && source < DSRC_COUNT ? source_names[source] : "?";
}

static const char *const conflict_names[DC_END - DC_FIRST] = {
    [DC_RESERVE - DC_FIRST] = "reserve",           [DC_PEAK_LIMIT - DC_FIRST] = "peak_limit",
    [DC_EXPORT_LIMIT - DC_FIRST] = "export_limit", [DC_GRID_SERVICE - DC_FIRST] = "grid_service",
    [DC_EV_BATTERY - DC_FIRST] = "ev_battery",     [DC_ESTOP - DC_FIRST] = "estop",
    [DC_SCHEDULE - DC_FIRST] = "schedule",
};

const char *decision_reason_name(int reason)
{
    if (reason >= DC_FIRST && reason < DC_END)
        return conflict_names[reason - DC_FIRST];
    return reason >= 0 && reason < DR_COUNT ? reason_names[reason] : "?";
}

void decision_init(struct decision *dm, const struct procimg *img, const char *strategy)
{
    /* Only the used part of the arrays is initialised: the property test runs a million
     * cycles and the struct is several kilobytes. */
    dm->now_ms = img->now_ms;
    snprintf(dm->strategy, sizeof dm->strategy, "%s", strategy ? strategy : "");
    dm->grid_w = img->grid_ok ? img->grid_w : NAN;
    dm->soc = procimg_site_soc(img);
    dm->battery_w = 0;
    dm->pv_w = 0;
    dm->target_w = dm->error_w = dm->p_w = dm->i_w = dm->d_w = dm->raw_w = NAN;
    dm->n_requests = 0;
    dm->requests_dropped = 0;
    dm->n_clamps = 0;
    dm->clamps_dropped = 0;
    dm->n_assets = img->n_devices < PROCIMG_MAX_DEVICES ? img->n_devices : PROCIMG_MAX_DEVICES;
    for (size_t i = 0; i < dm->n_assets; i++) {
        const struct procimg_dev *d = &img->dev[i];
        struct decision_asset *a = &dm->asset[i];
        memcpy(a->asset_id, d->asset_id, sizeof a->asset_id);
        a->asset_id[sizeof a->asset_id - 1] = '\0';
        a->type = (uint8_t)d->type;
        a->source = DSRC_NONE;
        a->set = 0;
        a->requested_w = NAN;
        a->final_w = NAN;
        if (procimg_dev_usable(d) && isfinite(d->power_w)) {
            if (d->type == PROCIMG_BATTERY)
                dm->battery_w += d->power_w;
            else if (d->type == PROCIMG_PV)
                dm->pv_w += d->power_w;
        }
    }
}

int decision_request(struct decision *dm, int source, int asset, double power_w)
{
    if (source <= DSRC_NONE || source >= DSRC_COUNT || asset < DECISION_SITE ||
        asset >= (int)dm->n_assets)
        return -EINVAL;
    if (dm->n_requests >= DECISION_MAX_REQUESTS) {
        dm->requests_dropped++;
        return -ENOSPC;
    }
    struct decision_request *r = &dm->req[dm->n_requests++];
    r->asset = (int16_t)asset;
    r->source = (uint8_t)source;
    r->power_w = power_w;
    return 0;
}

void decision_clamp(struct decision *dm, int asset, int reason, double from_w, double to_w)
{
    if (dm->n_clamps >= DECISION_MAX_CLAMPS) {
        dm->clamps_dropped++;
        return;
    }
    struct decision_clamp *c = &dm->clamp[dm->n_clamps++];
    c->asset = (int16_t)asset;
    c->reason = (uint8_t)reason;
    c->from_w = from_w;
    c->to_w = to_w;
}

size_t decision_count(const struct decision *dm, int reason)
{
    size_t n = 0;
    for (size_t i = 0; i < dm->n_clamps; i++)
        n += dm->clamp[i].reason == reason;
    return n;
}

/* An appending writer that remembers overflow instead of failing at every call. */
struct out {
    char *buf;
    size_t len, pos;
    int overflow;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->pos < o->len ? o->len - o->pos : 0;
    int n = vsnprintf(room ? o->buf + o->pos : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) {
        o->overflow = 1;
        o->pos = o->len;
        return;
    }
    o->pos += (size_t)n;
}

/* Appends a string without printf (the CSV rows are written every cycle of long runs). */
static void put_str(struct out *o, const char *str, size_t n)
{
    if (o->overflow || o->pos + n >= o->len) {
        o->overflow = 1;
        o->pos = o->len;
        return;
    }
    memcpy(o->buf + o->pos, str, n);
    o->pos += n;
    o->buf[o->pos] = '\0';
}

static void put_fixed(struct out *o, double v, int decimals)
{
    char tmp[FMTNUM_MAX];
    put_str(o, tmp, fmt_fixed(tmp, v, decimals));
}

static void put_id(struct out *o, const char *id)
{
    char clean[PROCIMG_ID_LEN];
    size_t i;
    for (i = 0; i + 1 < sizeof clean && id[i]; i++) {
        unsigned char ch = (unsigned char)id[i];
        clean[i] = (ch < 0x20 || ch == 0x7f || strchr(",;:=@>\"", ch)) ? '_' : (char)ch;
    }
    clean[i] = '\0';
    put_str(o, clean, i);
}

/* NaN prints as "nan" on glibc with any precision; spelled out here so the output does not
 * depend on the C library's choice ("nan", "-nan", "NaN"). */
static void put_num(struct out *o, double v)
{
    if (isnan(v))
        put_str(o, "nan", 3);
    else
        put_fixed(o, v, 3);
}

static void put_w(struct out *o, double v)
{
    put_str(o, ",", 1);
    put_num(o, v);
}

static int finish(struct out *o)
{
    if (o->overflow) {
        if (o->len)
            o->buf[o->len - 1] = '\0';
        return -ENOSPC;
    }
    return (int)o->pos;
}

int decision_csv_header(char *buf, size_t len)
{
    struct out o = {buf, len, 0, 0};
    put(&o, "now_ms,strategy,grid_w,soc,battery_w,pv_w,target_w,error_w,p_w,i_w,d_w,raw_w,"
            "setpoints,clamps,dropped\n");
    return finish(&o);
}

int decision_csv_row(const struct decision *dm, char *buf, size_t len)
{
    struct out o = {buf, len, 0, 0};
    put(&o, "%lld,", (long long)dm->now_ms);
    put_id(&o, dm->strategy);
    put_w(&o, dm->grid_w);
    put_str(&o, ",", 1);
    if (isnan(dm->soc))
        put_str(&o, "nan", 3);
    else
        put_fixed(&o, dm->soc, 6);
    put_w(&o, dm->battery_w);
    put_w(&o, dm->pv_w);
    put_w(&o, dm->target_w);
    put_w(&o, dm->error_w);
    put_w(&o, dm->p_w);
    put_w(&o, dm->i_w);
    put_w(&o, dm->d_w);
    put_w(&o, dm->raw_w);
    put(&o, ",");
    int first = 1;
    for (size_t i = 0; i < dm->n_assets; i++) {
        const struct decision_asset *a = &dm->asset[i];
        if (!a->set)
            continue;
        if (!first)
            put(&o, ";");
        first = 0;
        put_id(&o, a->asset_id);
        put(&o, "=");
        put_num(&o, a->final_w);
        put(&o, "@%s", decision_source_name(a->source));
    }
    put(&o, ",");
    for (size_t i = 0; i < dm->n_clamps; i++) {
        const struct decision_clamp *c = &dm->clamp[i];
        if (i)
            put(&o, ";");
        if (c->asset >= 0 && (size_t)c->asset < dm->n_assets)
            put_id(&o, dm->asset[c->asset].asset_id);
        else
            put(&o, "site");
        put(&o, ":%s:", decision_reason_name(c->reason));
        put_num(&o, c->from_w);
        put(&o, ">");
        put_num(&o, c->to_w);
    }
    put(&o, ",%u\n", dm->requests_dropped + dm->clamps_dropped);
    return finish(&o);
}
