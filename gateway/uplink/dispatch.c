/* dispatch: see dispatch.h.
 *
 * A setpoint is one of three targets: an asset (asset_id), the whole site (site_id, split
 * among the batteries by the arbiter), or, when it names neither, the primary asset (the
 * legacy single-asset protocol). A later setpoint for the same target before the next cycle
 * replaces the earlier one, which is answered REJECTED "superseded by ID". */
#include "gateway/uplink/dispatch.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pending {
    char id[AGENTMSG_ID_LEN];
    int asset; /* device index, or DECISION_SITE */
    double power_w;
};

struct dispatch {
    struct controller *ctl;
    struct dispatch_opts o;
    char site_id[SITECONF_ID_MAX], primary[PROCIMG_ID_LEN];
    size_t n;
    struct pending p[DISPATCH_MAX_PENDING];
};

static void logf_(struct dispatch *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct dispatch *d, const char *fmt, ...)
{
    char body[512], line[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "site=%s %s", d->site_id, body);
    if (d->o.log)
        d->o.log(d->o.log_ctx, line);
    else
        fprintf(stderr, "%s\n", line);
}

static void ack(struct dispatch *d, const char *id, int state, const char *detail,
                double requested_w, double allocated_w, const struct agentmsg_alloc *a, size_t n)
{
    struct agentmsg_ack m = {id, state, detail, requested_w, allocated_w, a, n};
    if (d->o.ack)
        d->o.ack(d->o.ack_ctx, &m);
}

struct dispatch *dispatch_new(struct controller *ctl, const struct dispatch_opts *opts)
{
    struct dispatch *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->ctl = ctl;
    d->o = *opts;
    snprintf(d->site_id, sizeof d->site_id, "%s", opts->site_id ? opts->site_id : "");
    snprintf(d->primary, sizeof d->primary, "%s",
             opts->primary_asset_id ? opts->primary_asset_id : "");
    return d;
}

void dispatch_free(struct dispatch *d)
{
    free(d);
}

static int find_device(struct dispatch *d, const char *asset_id)
{
    for (size_t i = 0; i < controller_n_devices(d->ctl); i++)
        if (!strcmp(device_cfg(controller_device(d->ctl, i))->asset_id, asset_id))
            return (int)i;
    return -1;
}

static int finish(struct dispatch *d, const struct agentmsg_setpoint *sp, int state,
                  const char *detail)
{
    logf_(d, "event=setpoint_%s setpoint_id=%s reason=\"%s\"",
          state == AGENTMSG_ACK_EXPIRED ? "expired" : "rejected", sp->setpoint_id, detail);
    ack(d, sp->setpoint_id, state, detail, sp->power_w, 0, NULL, 0);
    return state;
}

int dispatch_setpoint(struct dispatch *d, const struct agentmsg_setpoint *sp, int64_t now_ms,
                      int64_t wall_ms)
{
    char why[200];
    int asset;
    const char *target = sp->target_id;
    if (sp->target == 's') {
        if (strcmp(sp->target_id, d->site_id)) {
            snprintf(why, sizeof why, "unknown site %s", sp->target_id);
            return finish(d, sp, AGENTMSG_ACK_REJECTED, why);
        }
        asset = DECISION_SITE;
    } else {
        if (sp->target != 'a')
            target = d->primary;
        asset = target[0] ? find_device(d, target) : -1;
        if (asset < 0) {
            snprintf(why, sizeof why, "unknown asset %s", target[0] ? target : "(no primary)");
            return finish(d, sp, AGENTMSG_ACK_REJECTED, why);
        }
        if (device_cfg(controller_device(d->ctl, (size_t)asset))->type == DEV_METER) {
            snprintf(why, sizeof why, "asset %s is a meter: nothing to command", target);
            return finish(d, sp, AGENTMSG_ACK_REJECTED, why);
        }
    }
    if (!isfinite(sp->power_w))
        return finish(d, sp, AGENTMSG_ACK_REJECTED, "non-finite power_w");
    if (sp->expires_ms <= 0)
        return finish(d, sp, AGENTMSG_ACK_REJECTED, "no expires_ms");
    int64_t left = sp->expires_ms - wall_ms;
    /* A command is held at most a week (the headend's own TTL bound): a far-future or
     * forged expires_ms (INT64_MAX) must not overflow the controller's deadline. */
    if (left > DISPATCH_TTL_MAX_MS)
        left = DISPATCH_TTL_MAX_MS;
    double power = sp->power_w;
    if (d->o.lockstep) {
        left = (int64_t)llround((double)left / 1000.0) * 1000;
        power = nearbyint(power * 1000.0) / 1000.0;
    }
    if (left <= 0) {
        snprintf(why, sizeof why, "expired %lld ms before it arrived", (long long)-left);
        return finish(d, sp, AGENTMSG_ACK_EXPIRED, why);
    }
    int rc =
        controller_command(d->ctl, asset == DECISION_SITE ? NULL : target, power, now_ms + left);
    if (rc)
        return finish(d, sp, AGENTMSG_ACK_REJECTED, "unknown asset");
    /* a newer command for the same target replaces one not yet applied */
    for (size_t i = 0; i < d->n; i++) {
        if (d->p[i].asset != asset)
            continue;
        snprintf(why, sizeof why, "superseded by %s", sp->setpoint_id);
        logf_(d, "event=setpoint_superseded setpoint_id=%s by=%s", d->p[i].id, sp->setpoint_id);
        ack(d, d->p[i].id, AGENTMSG_ACK_REJECTED, why, d->p[i].power_w, 0, NULL, 0);
        d->p[i] = d->p[--d->n];
        break;
    }
    if (d->n == DISPATCH_MAX_PENDING) { /* more than a cycle can hold: answer the oldest now */
        ack(d, d->p[0].id, AGENTMSG_ACK_APPLIED, "acknowledged without allocation", d->p[0].power_w,
            NAN, NULL, 0);
        memmove(&d->p[0], &d->p[1], (d->n - 1) * sizeof d->p[0]);
        d->n--;
    }
    struct pending *p = &d->p[d->n++];
    snprintf(p->id, sizeof p->id, "%s", sp->setpoint_id);
    p->asset = asset;
    p->power_w = power;
    logf_(d, "event=setpoint_applied setpoint_id=%s target=%s power_w=%.3f until_ms=%lld",
          sp->setpoint_id, asset == DECISION_SITE ? "site" : target, power,
          (long long)(now_ms + left));
    return 0;
}

/* The asset has a request of its own at manual priority or above, so the site split left
 * it out: it is not part of a site setpoint's allocation. */
static int own_request(const struct decision *dm, int asset)
{
    for (size_t k = 0; k < dm->n_requests; k++)
        if (dm->req[k].asset == asset && dm->req[k].source >= DSRC_MANUAL)
            return 1;
    return 0;
}

/* Asset i's share of a site setpoint in site signs: a battery's setpoint; for a charger,
 * boiler or PV that the split let take part (split.evse, .boiler, .pv_curtailment), the change
 * of the site's balance it was asked for (more consumption, less production: negative). NaN
 * when it is not part of a site allocation. */
static double flex_share(const struct decision *dm, const struct procimg *img, size_t i)
{
    const struct decision_asset *a = &dm->asset[i];
    const struct procimg_dev *d = &img->dev[i];
    if (a->type == PROCIMG_BATTERY)
        return a->set ? a->final_w : 0.0;
    if ((a->type != PROCIMG_PV && a->type != PROCIMG_EVSE && a->type != PROCIMG_BOILER) ||
        a->source != DSRC_MANUAL || !a->set || !isfinite(a->final_w) || !isfinite(d->power_w))
        return NAN;
    return a->type == PROCIMG_PV ? a->final_w - d->power_w : d->power_w - a->final_w;
}

/* Why asset i got less than asked: the first interlock clamp the cycle recorded for it, else
 * whether it sits at its envelope (the split respects the envelope, so no clamp is recorded
 * when a site request is cut there). Appends "ID REASON W W" to buf. */
static void why_short(const struct decision *dm, const struct procimg *img, size_t i,
                      double requested, char *buf, size_t len)
{
    const char *why = NULL;
    for (size_t k = 0; k < dm->n_clamps && !why; k++)
        if (dm->clamp[k].asset == (int)i)
            why = decision_reason_name(dm->clamp[k].reason);
    const struct procimg_dev *dev = &img->dev[i];
    double w = dm->asset[i].set ? dm->asset[i].final_w : 0.0;
    if (!why && dev->has_envelope)
        why = (requested > 0 && w >= dev->envelope_hi_w - 1) ||
                      (requested < 0 && w <= dev->envelope_lo_w + 1)
                  ? "at limit"
                  : NULL;
    if (!why)
        return;
    size_t used = strlen(buf);
    if (used + 2 < len)
        snprintf(buf + used, len - used, "%s%s %s %.0f W", used ? ", " : "", dm->asset[i].asset_id,
                 why, w);
}

/* The ack of one applied setpoint after the cycle: APPLIED when it got what it asked for (within
 * the rounding: 1 W + 0.1 %), APPLIED "partial: ..." when it got less, FAILED "not allocated:
 * ..." when it got nothing (docs/protocol.md, "Setpoints and ack states"). */
static void ack_applied(struct dispatch *d, const struct pending *p, const struct decision *dm)
{
    const struct procimg *img = controller_image(d->ctl);
    struct agentmsg_alloc al[PROCIMG_MAX_DEVICES] = {0};
    size_t n = 0, idx[PROCIMG_MAX_DEVICES];
    int state = AGENTMSG_ACK_APPLIED;
    char detail[400] = "", why[300] = "";
    double site_sum = 0;
    if (p->asset == DECISION_SITE) {
        for (size_t i = 0; i < dm->n_assets && i < img->n_devices; i++) {
            double w = flex_share(dm, img, i);
            if (isnan(w) || !img->dev[i].online || own_request(dm, (int)i))
                continue;
            /* the device's own setpoint, as in an asset setpoint's ack (the headend checks it
             * against the asset's range); the sum is in site signs */
            snprintf(al[n].asset_id, sizeof al[n].asset_id, "%s", dm->asset[i].asset_id);
            al[n].power_w = dm->asset[i].type == PROCIMG_BATTERY ? w : dm->asset[i].final_w;
            site_sum += w;
            idx[n++] = i;
        }
    } else {
        size_t i = (size_t)p->asset;
        int wrc = controller_write_rc(d->ctl, i);
        if (i >= dm->n_assets || !img->dev[i].online) {
            state = AGENTMSG_ACK_FAILED;
            snprintf(detail, sizeof detail, "asset offline");
        } else if (wrc) {
            state = AGENTMSG_ACK_FAILED;
            snprintf(detail, sizeof detail, "write failed: %s", bus_strerror(wrc));
        } else {
            snprintf(al[0].asset_id, sizeof al[0].asset_id, "%s", dm->asset[i].asset_id);
            al[0].power_w = dm->asset[i].set ? dm->asset[i].final_w : NAN;
            idx[0] = i;
            n = 1;
        }
    }
    double sum = p->asset == DECISION_SITE ? site_sum : 0;
    for (size_t k = 0; p->asset != DECISION_SITE && k < n; k++)
        sum += al[k].power_w;
    if (state == AGENTMSG_ACK_APPLIED && isfinite(sum) &&
        fabs(sum - p->power_w) > 1.0 + 0.001 * fabs(p->power_w)) {
        for (size_t k = 0; k < n; k++)
            why_short(dm, img, idx[k], p->power_w, why, sizeof why);
        if (n == 0)
            snprintf(why, sizeof why, "no usable battery");
        int nothing = fabs(sum) <= 1.0;
        state = nothing ? AGENTMSG_ACK_FAILED : AGENTMSG_ACK_APPLIED;
        snprintf(detail, sizeof detail, "%s: %.0f of %.0f W%s%s%s",
                 nothing ? "not allocated" : "partial", sum, p->power_w, why[0] ? " (" : "", why,
                 why[0] ? ")" : "");
    }
    logf_(d, "event=setpoint_%s setpoint_id=%s requested_w=%.3f allocated_w=%.3f assets=%zu%s%s%s",
          state == AGENTMSG_ACK_APPLIED ? "acked" : "failed", p->id, p->power_w, sum, n,
          detail[0] ? " reason=\"" : "", detail, detail[0] ? "\"" : "");
    ack(d, p->id, state, detail, p->power_w, n ? sum : 0, al, n);
}

void dispatch_after_cycle(struct dispatch *d, const struct decision *dm)
{
    for (size_t k = 0; k < d->n; k++)
        ack_applied(d, &d->p[k], dm);
    d->n = 0;
}

size_t dispatch_pending(const struct dispatch *d)
{
    return d->n;
}
