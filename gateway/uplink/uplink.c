/* uplink: see uplink.h. The control thread's side: it only moves bytes between bounded
 * queues under `mu` (the outbox, uplink_outbox.c; the setpoints received) and never waits on
 * the network. The uplink thread is uplink_stream.c; what the headend sends is handled in
 * uplink_inbox.c; the structure they share is in uplink_impl.h.
 *
 * Delivery (docs/protocol.md): with a spool every sample goes to disk first (page cache: a
 * kill -9 of the gateway loses nothing) and is kept until the headend acknowledges it; without
 * one it waits in the memory queue. */
#include "gateway/uplink/uplink.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rtclock.h"
#include "gateway/uplink/uplink_impl.h"

void uplink_log(struct uplink *u, const char *fmt, ...)
{
    char body[600], line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    /* the event and its fields first, then who (docs/operations.md, "Logs") */
    snprintf(line, sizeof line, "%s site=%s gateway=%s", body, u->id.site_id, u->id.gateway_id);
    if (u->opts.log)
        u->opts.log(u->opts.log_ctx, line);
    else
        fprintf(stderr, "%s\n", line);
}

/* What uplink_new allocated before gRPC started (also its failure path). */
static void free_memory(struct uplink *u)
{
    outbox_free(u->out);
    spool_close(u->spool);
    free(u->rx);
    free(u->reg);
    free(u->last_dm);
    pthread_mutex_destroy(&u->mu);
    pthread_cond_destroy(&u->cond);
    free(u);
}

struct uplink *uplink_new(const struct uplink_cfg *cfg, const struct uplink_identity *id,
                          const struct uplink_opts *opts, char *err, size_t errlen)
{
    if (!cfg->target[0]) {
        snprintf(err, errlen, "uplink.target: required");
        return NULL;
    }
    if (id->n_assets == 0) {
        snprintf(err, errlen, "uplink: the site has no assets to register");
        return NULL;
    }
    struct uplink *u = calloc(1, sizeof *u);
    if (!u) {
        snprintf(err, errlen, "uplink: out of memory");
        return NULL;
    }
    u->cfg = *cfg;
    u->id = *id;
    if (opts)
        u->opts = *opts;
    u->rng = (u->opts.seed ? u->opts.seed : (uint64_t)rtclock_wall_ms()) | 1;
    /* telemetry_seq starts at the start time in Unix ms: below 1000 samples a second it keeps
     * increasing across restarts (spooled samples of the last run carry lower ones) */
    int64_t seq0 = rtclock_wall_ms();
    for (size_t i = 0; i < PROCIMG_MAX_DEVICES; i++)
        u->tseq[i] = seq0 > 0 ? (uint64_t)seq0 : 0;
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cond, NULL);
    idset_init(&u->ids);
    u->t_start_ms = rtclock_monotonic_ms();
    u->rx_cap = (size_t)cfg->queue_len;
    u->rx = calloc(u->rx_cap, sizeof *u->rx);
    if (cfg->spool_dir[0]) {
        int rc =
            spool_open(cfg->spool_dir, id->gateway_id, (uint64_t)cfg->spool_max_bytes, &u->spool);
        if (rc) {
            snprintf(err, errlen, "uplink.spool_dir: cannot open \"%s\": %s", cfg->spool_dir,
                     strerror(-rc));
            free_memory(u);
            return NULL;
        }
    }
    if (!u->rx || outbox_new(cfg, u->spool, &u->st, rtclock_monotonic_ms(), &u->out) ||
        agentmsg_register(id->gateway_id, id->site_id, id->assets, id->n_assets,
                          id->primary_asset_id, id->software, cfg->legacy, &u->reg, &u->reg_len)) {
        snprintf(err, errlen, "uplink: out of memory");
        free_memory(u);
        return NULL;
    }
    if (u->spool && spool_records(u->spool))
        uplink_log(u, "event=spool_found dir=%s records=%llu", cfg->spool_dir,
                   (unsigned long long)spool_records(u->spool));
    if (uplink_stream_start(u, err, errlen)) {
        uplink_free(u);
        return NULL;
    }
    uplink_log(u,
               "event=start target=%s assets=%zu primary=%s legacy=%d spool=%s telemetry_seq0=%llu "
               "tls=%s",
               cfg->target, id->n_assets, id->primary_asset_id, cfg->legacy,
               cfg->spool_dir[0] ? cfg->spool_dir : "-", (unsigned long long)u->tseq[0],
               !cfg->tls.on       ? "off"
               : cfg->tls.cert[0] ? "mutual"
                                  : "server");
    return u;
}

void uplink_free(struct uplink *u)
{
    if (!u)
        return;
    uplink_stream_stop(u);
    if (u->thread_started)
        uplink_log(
            u,
            "event=stop telemetry_sent=%llu acked=%llu spooled=%llu unacked=%llu "
            "dropped=%llu ack_timeouts=%llu",
            (unsigned long long)u->st.telemetry_sent, (unsigned long long)u->st.telemetry_acked,
            (unsigned long long)u->st.spooled,
            (unsigned long long)(outbox_queued(u->out) + (u->spool ? spool_records(u->spool) : 0)),
            (unsigned long long)(u->st.telemetry_dropped +
                                 (u->spool ? spool_dropped(u->spool) : 0)),
            (unsigned long long)u->st.ack_timeouts);
    free_memory(u);
}

void uplink_reload(struct uplink *u)
{
    atomic_store(&u->reload, 1);
}

static const char *clamp_of(const struct decision *dm, size_t i)
{
    for (size_t k = 0; dm && k < dm->n_clamps; k++)
        if (dm->clamp[k].asset == (int)i)
            return decision_reason_name(dm->clamp[k].reason);
    return NULL;
}

/* Dropped telemetry is logged when it happens: a spool segment at once (it is rare and
 * large), single memory-queue messages at most every 10 s of controller time, with counts. */
static void log_drop(struct uplink *u, uint64_t n, uint64_t total, int64_t now_ms, int from_spool)
{
    if (from_spool) {
        pthread_mutex_lock(&u->mu);
        uint64_t full = spool_disk_full(u->spool);
        int disk = full != u->disk_full_seen;
        u->disk_full_seen = full;
        pthread_mutex_unlock(&u->mu);
        uplink_log(
            u,
            "event=telemetry_dropped records=%llu total=%llu reason=\"%s (spool_max_bytes %d): "
            "oldest segment deleted\"",
            (unsigned long long)n, (unsigned long long)total,
            disk ? "disk full (ENOSPC) before the spool's bound" : "spool full",
            u->cfg.spool_max_bytes);
        return;
    }
    u->mem_dropped_logged += n;
    if (u->mem_drop_log_ms && now_ms - u->mem_drop_log_ms < 10000)
        return;
    uplink_log(u,
               "event=telemetry_dropped records=%llu total=%llu reason=\"memory queue full "
               "(queue_len %d)\"",
               (unsigned long long)u->mem_dropped_logged, (unsigned long long)total,
               u->cfg.queue_len);
    u->mem_dropped_logged = 0;
    u->mem_drop_log_ms = now_ms;
}

/* The spool refused a write (disk full with nothing left to delete, I/O error): said once
 * per episode, and again when it works again (control thread). */
static void log_spool_error(struct uplink *u, int err)
{
    if (err && !u->spool_err)
        uplink_log(u,
                   "event=spool_error error=\"%s\" reason=\"cannot write the spool: samples wait "
                   "in memory (queue_len %d) and are lost if the gateway stops\"",
                   strerror(-err), u->cfg.queue_len);
    else if (!err && u->spool_err)
        uplink_log(u, "event=spool_ok reason=\"the spool takes samples again\"");
    u->spool_err = err;
}

int uplink_decide(struct uplink *u, const struct decision *dm, int64_t now_ms)
{
    if (!dm || u->cfg.legacy)
        return 0;
    int due =
        !u->last_dm || agentmsg_decision_changed(u->last_dm, dm) ||
        (u->cfg.decision_period_ms > 0 && now_ms - u->last_dm_ms >= u->cfg.decision_period_ms);
    if (!due)
        return 0;
    uint8_t *buf;
    size_t len;
    if (!u->last_dm && !(u->last_dm = malloc(sizeof *u->last_dm)))
        return -ENOMEM;
    if (agentmsg_decision(dm, rtclock_wall_ms(), &buf, &len))
        return -ENOMEM;
    /* the record to compare with is a copy: dm belongs to the cycle */
    *u->last_dm = *dm;
    u->last_dm_ms = now_ms;
    pthread_mutex_lock(&u->mu);
    outbox_push_decision(u->out, buf, len);
    pthread_mutex_unlock(&u->mu);
    return 1;
}

int uplink_publish(struct uplink *u, const struct procimg *img, const struct decision *dm,
                   int64_t now_ms)
{
    uplink_decide(u, dm, now_ms); /* every cycle: a change goes out without waiting */
    if (u->published && now_ms - u->last_pub_ms < u->cfg.telemetry_period_ms)
        return 0;
    u->published = 1;
    u->last_pub_ms = now_ms;
    int64_t ts = rtclock_wall_ms();
    int n = 0;
    for (size_t i = 0; i < img->n_devices && i < PROCIMG_MAX_DEVICES; i++) {
        const struct procimg_dev *d = &img->dev[i];
        if (u->cfg.legacy && strcmp(d->asset_id, u->id.primary_asset_id))
            continue;
        uint8_t *buf;
        size_t len;
        char status[64] = "";
        const char *clamp = clamp_of(dm, i);
        if (clamp) /* the status says why the setpoint is not what was asked */
            snprintf(status, sizeof status, "%s clamped=%s",
                     !d->online ? "offline"
                     : d->stale ? "stale"
                                : "ok",
                     clamp);
        if (agentmsg_telemetry(d, u->cfg.legacy ? "" : d->asset_id, clamp ? status : NULL, ts,
                               ++u->tseq[i], &buf, &len))
            continue;
        pthread_mutex_lock(&u->mu);
        int spool_rc, from_spool;
        uint64_t dropped = outbox_push_telemetry(u->out, buf, len, &spool_rc, &from_spool);
        uint64_t total = u->st.telemetry_dropped + (u->spool ? spool_dropped(u->spool) : 0);
        pthread_mutex_unlock(&u->mu);
        if (u->spool)
            log_spool_error(u, spool_rc);
        if (dropped)
            log_drop(u, dropped, total, now_ms, from_spool);
        n++;
    }
    return n;
}

int uplink_poll_setpoint(struct uplink *u, struct agentmsg_setpoint *out)
{
    int got = 0;
    pthread_mutex_lock(&u->mu);
    if (u->rx_n) {
        *out = u->rx[u->rx_head];
        u->rx_head = (u->rx_head + 1) % u->rx_cap;
        u->rx_n--;
        got = 1;
    }
    pthread_mutex_unlock(&u->mu);
    return got;
}

int uplink_ack(struct uplink *u, const struct agentmsg_ack *a)
{
    uint8_t *buf;
    size_t len;
    if (agentmsg_ack(a, &buf, &len))
        return -ENOMEM;
    pthread_mutex_lock(&u->mu);
    idset_set(&u->ids, a->setpoint_id, a->state);
    int dropped = outbox_push_ack(u->out, buf, len);
    pthread_mutex_unlock(&u->mu);
    return dropped ? -ENOBUFS : 0;
}

void uplink_get_stats(struct uplink *u, struct uplink_stats *st)
{
    pthread_mutex_lock(&u->mu);
    *st = u->st;
    st->queue_depth = outbox_queued(u->out);
    st->window = outbox_window(u->out);
    if (u->spool) {
        st->spool_records = spool_records(u->spool);
        st->spool_dropped = spool_dropped(u->spool);
    }
    pthread_mutex_unlock(&u->mu);
}

int uplink_wait_registered(struct uplink *u, int64_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    int rc = 0;
    pthread_mutex_lock(&u->mu);
    while (!u->st.registered && rc == 0)
        rc = pthread_cond_timedwait(&u->cond, &u->mu, &ts);
    int ok = u->st.registered;
    pthread_mutex_unlock(&u->mu);
    return ok ? 0 : -ETIMEDOUT;
}
