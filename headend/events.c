/* events: see events.h. One mutex guards the ring, the streams and the counters; every holder
 * does bounded work (a copy of one event, or a pass over at most the cap's streams). */
#include "headend/events.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rtclock.h"

struct ev_entry {
    uint64_t id;
    size_t site_idx;
    int scoped; /* 1: only for streams watching site_idx (telemetry) */
    char type[16];
    char data[EVENTS_DATA_MAX];
};

struct events_stream {
    struct events *ev;
    struct events_stream *prev, *next;
    void *conn;
    size_t site_idx;
    uint64_t cursor; /* the next event id to look at */
    int resumed, hello_sent, parked, ended;
    int64_t keepalive_ms, last_write_ms;
    char out[EVENTS_DATA_MAX + 128]; /* the text being written; off of len bytes gone */
    size_t off, len;
};

struct events {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int stop, closing;
    struct ev_entry *ring;
    uint64_t first_id, next_id; /* ids of this run: first_id .. next_id-1 were published */
    size_t n_sites;
    unsigned *watch; /* per site, the streams that want its telemetry */
    size_t max_streams, n_streams;
    struct events_stream *streams;
    unsigned changes; /* site-row changes since the last "sites" event */
    int64_t last_sites_ms;
    uint64_t dropped;
    events_hook_fn suspend, resume;
};

/* The oldest id the ring still holds. */
static uint64_t oldest(const struct events *ev)
{
    return ev->next_id - ev->first_id > EVENTS_RING ? ev->next_id - EVENTS_RING : ev->first_id;
}

static void append(struct events *ev, const char *type, size_t site_idx, int scoped,
                   const char *data)
{
    struct ev_entry *e = &ev->ring[ev->next_id % EVENTS_RING];
    e->id = ev->next_id++;
    e->site_idx = site_idx;
    e->scoped = scoped;
    snprintf(e->type, sizeof(e->type), "%s", type);
    /* an event longer than the slot would be cut into invalid JSON: replaced by a marker */
    if (snprintf(e->data, sizeof(e->data), "%s", data) >= (int)sizeof(e->data))
        snprintf(e->data, sizeof(e->data), "{\"truncated\":true}");
}

/* Wakes the parked streams that have something to do. Called with mu held. */
static void wake_due(struct events *ev, int64_t now)
{
    for (struct events_stream *s = ev->streams; s; s = s->next)
        if (s->parked &&
            (ev->closing || s->cursor < ev->next_id || now - s->last_write_ms >= s->keepalive_ms)) {
            s->parked = 0;
            ev->resume(s->conn);
        }
}

static void *run(void *arg)
{
    struct events *ev = arg;
    pthread_mutex_lock(&ev->mu);
    while (!ev->stop) {
        int64_t now = rtclock_monotonic_ms();
        if (ev->changes && now - ev->last_sites_ms >= EVENTS_COALESCE_MS) {
            char d[96];
            snprintf(d, sizeof(d), "{\"changes\":%u,\"now_ms\":%" PRId64 "}", ev->changes,
                     rtclock_wall_ms());
            append(ev, "sites", SIZE_MAX, 0, d);
            ev->changes = 0;
            ev->last_sites_ms = now;
        }
        wake_due(ev, now);
        struct timespec dl;
        rtclock_monotonic_deadline((int64_t)EVENTS_TICK_MS * 1000, &dl);
        pthread_cond_timedwait(&ev->cv, &ev->mu, &dl);
    }
    pthread_mutex_unlock(&ev->mu);
    return NULL;
}

int events_new(size_t n_sites, size_t max_streams, events_hook_fn suspend, events_hook_fn resume,
               struct events **out)
{
    *out = NULL;
    struct events *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return -ENOMEM;
    ev->ring = calloc(EVENTS_RING, sizeof(*ev->ring));
    ev->watch = calloc(n_sites ? n_sites : 1, sizeof(*ev->watch));
    if (!ev->ring || !ev->watch) {
        free(ev->ring);
        free(ev->watch);
        free(ev);
        return -ENOMEM;
    }
    ev->n_sites = n_sites;
    ev->max_streams = max_streams;
    ev->suspend = suspend;
    ev->resume = resume;
    /* Ids start from the wall clock in microseconds: a Last-Event-ID from an earlier run of
     * the headend is always older than this run's first event, so it is never taken for one
     * of this run's (the client gets "resumed":false and takes a snapshot). */
    ev->first_id = ev->next_id = (uint64_t)rtclock_wall_ms() * 1000;
    ev->last_sites_ms = rtclock_monotonic_ms();
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ev->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&ev->mu, NULL);
    if (pthread_create(&ev->thread, NULL, run, ev)) {
        pthread_cond_destroy(&ev->cv);
        pthread_mutex_destroy(&ev->mu);
        free(ev->ring);
        free(ev->watch);
        free(ev);
        return -EAGAIN;
    }
    *out = ev;
    return 0;
}

void events_close(struct events *ev)
{
    if (!ev)
        return;
    pthread_mutex_lock(&ev->mu);
    ev->closing = 1;
    wake_due(ev, rtclock_monotonic_ms());
    pthread_mutex_unlock(&ev->mu);
}

void events_free(struct events *ev)
{
    if (!ev)
        return;
    pthread_mutex_lock(&ev->mu);
    ev->stop = 1;
    pthread_cond_signal(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
    pthread_join(ev->thread, NULL);
    /* streams the transport never released (it should have): detached, not freed */
    for (struct events_stream *s = ev->streams; s; s = s->next)
        s->ev = NULL;
    pthread_cond_destroy(&ev->cv);
    pthread_mutex_destroy(&ev->mu);
    free(ev->ring);
    free(ev->watch);
    free(ev);
}

void events_publish(struct events *ev, const char *type, size_t site_idx, const char *data)
{
    if (!ev)
        return;
    int scoped = !strcmp(type, "telemetry");
    pthread_mutex_lock(&ev->mu);
    ev->changes++;
    if (!scoped || (site_idx < ev->n_sites && ev->watch[site_idx]))
        append(ev, type, site_idx, scoped, data);
    pthread_mutex_unlock(&ev->mu);
}

void events_touch(struct events *ev)
{
    if (!ev)
        return;
    pthread_mutex_lock(&ev->mu);
    ev->changes++;
    pthread_mutex_unlock(&ev->mu);
}

int events_wanted(struct events *ev, size_t site_idx)
{
    if (!ev || site_idx >= ev->n_sites)
        return 0;
    pthread_mutex_lock(&ev->mu);
    int w = ev->watch[site_idx] > 0;
    pthread_mutex_unlock(&ev->mu);
    return w;
}

int events_open(struct events *ev, size_t site_idx, const char *last_id, int keepalive_s,
                void *conn, struct events_stream **out)
{
    *out = NULL;
    struct events_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    pthread_mutex_lock(&ev->mu);
    if (ev->closing || ev->n_streams >= ev->max_streams) {
        int e = ev->closing ? -ESHUTDOWN : -EBUSY;
        pthread_mutex_unlock(&ev->mu);
        free(s);
        return e;
    }
    s->ev = ev;
    s->conn = conn;
    s->site_idx = site_idx < ev->n_sites ? site_idx : SIZE_MAX;
    s->keepalive_ms = (int64_t)keepalive_s * 1000;
    s->last_write_ms = rtclock_monotonic_ms();
    s->cursor = ev->next_id;
    char *end = NULL;
    unsigned long long id = last_id && *last_id ? strtoull(last_id, &end, 10) : 0;
    if (end && !*end && id + 1 >= oldest(ev) && id < ev->next_id) {
        s->cursor = id + 1;
        s->resumed = 1;
    }
    if (s->site_idx != SIZE_MAX)
        ev->watch[s->site_idx]++;
    s->next = ev->streams;
    if (ev->streams)
        ev->streams->prev = s;
    ev->streams = s;
    ev->n_streams++;
    pthread_mutex_unlock(&ev->mu);
    *out = s;
    return 0;
}

static void put(struct events_stream *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(struct events_stream *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->out, sizeof(s->out), fmt, ap);
    va_end(ap);
    s->off = 0;
    s->len = n < 0 ? 0 : (size_t)n < sizeof(s->out) ? (size_t)n : sizeof(s->out) - 1;
}

/* The stream's next piece of text into s->out; 0 when there is none. Called with mu held. */
static int next_text(struct events *ev, struct events_stream *s, int64_t now)
{
    if (!s->hello_sent) {
        s->hello_sent = 1;
        put(s,
            "retry: %d\nevent: hello\ndata: {\"resumed\":%s,\"last_id\":%" PRIu64
            ",\"keepalive_s\":%" PRId64 "}\n\n",
            EVENTS_RETRY_MS, s->resumed ? "true" : "false", ev->next_id - 1,
            s->keepalive_ms / 1000);
        return 1;
    }
    if (s->cursor < oldest(ev)) {
        /* overwritten before this stream read it: a slow reader, dropped (its client
         * reconnects and takes a snapshot) */
        ev->dropped++;
        s->ended = 1;
        put(s, "event: reset\ndata: {\"reason\":\"slow reader: events lost\"}\n\n");
        return 1;
    }
    while (s->cursor < ev->next_id) {
        const struct ev_entry *e = &ev->ring[s->cursor++ % EVENTS_RING];
        if (e->scoped && e->site_idx != s->site_idx)
            continue;
        put(s, "id: %" PRIu64 "\nevent: %s\ndata: %s\n\n", e->id, e->type, e->data);
        return 1;
    }
    if (now - s->last_write_ms >= s->keepalive_ms) {
        put(s, ": keepalive\n\n");
        return 1;
    }
    return 0;
}

ssize_t events_read(struct events_stream *s, char *buf, size_t max)
{
    struct events *ev = s->ev;
    if (!ev)
        return -1;
    pthread_mutex_lock(&ev->mu);
    ssize_t n = 0;
    if (s->off == s->len) {
        if (ev->closing || s->ended || !next_text(ev, s, rtclock_monotonic_ms())) {
            if (ev->closing || s->ended) {
                pthread_mutex_unlock(&ev->mu);
                return -1;
            }
            s->parked = 1;
            ev->suspend(s->conn);
            pthread_mutex_unlock(&ev->mu);
            return 0;
        }
    }
    n = (ssize_t)(s->len - s->off < max ? s->len - s->off : max);
    memcpy(buf, s->out + s->off, (size_t)n);
    s->off += (size_t)n;
    s->last_write_ms = rtclock_monotonic_ms();
    pthread_mutex_unlock(&ev->mu);
    return n;
}

void events_release(struct events_stream *s)
{
    struct events *ev = s->ev;
    if (ev) {
        pthread_mutex_lock(&ev->mu);
        if (s->prev)
            s->prev->next = s->next;
        else
            ev->streams = s->next;
        if (s->next)
            s->next->prev = s->prev;
        if (s->site_idx != SIZE_MAX)
            ev->watch[s->site_idx]--;
        ev->n_streams--;
        pthread_mutex_unlock(&ev->mu);
    }
    free(s);
}

void events_stats(struct events *ev, size_t *open, uint64_t *dropped, uint64_t *last_id)
{
    pthread_mutex_lock(&ev->mu);
    *open = ev->n_streams;
    *dropped = ev->dropped;
    *last_id = ev->next_id - 1;
    pthread_mutex_unlock(&ev->mu);
}
