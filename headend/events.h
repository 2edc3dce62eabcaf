/* events: what the REST event streams (GET /events, docs/operations.md "Live events") send. The
 * hub publishes into a ring of numbered events (events_publish: a short copy under the module's
 * own mutex, never a wait, so a hub lock holder is never held up by a client); each open stream
 * reads the ring from its own cursor. A stream with nothing to send is parked (the transport's
 * suspend hook) and woken by the module's thread, which runs every EVENTS_TICK_MS: it wakes the
 * parked streams that have new events or a keepalive due, and coalesces site changes into one
 * "sites" event per second. A stream that falls a whole ring behind is ended with a "reset"
 * event (a slow reader is dropped, never buffered). Thread-safe: every call may come from any
 * thread; the suspend/resume hooks are called with the module's mutex held. */
#ifndef HEADEND_EVENTS_H
#define HEADEND_EVENTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define EVENTS_RING        8192 /* events kept for resuming and for slow readers */
#define EVENTS_DATA_MAX    448  /* one event's JSON (a telemetry point with its site's sums) */
#define EVENTS_TICK_MS     200  /* the wake-up period: an event reaches a client within it */
#define EVENTS_COALESCE_MS 1000 /* at most one "sites" event per second */
#define EVENTS_RETRY_MS    2000 /* the retry: hint sent to clients */
#define EVENTS_KEEPALIVE_S 15   /* default seconds between comment keepalives */

struct events;
struct events_stream;

/* The transport's hooks: park the stream's connection, wake it (from the module's thread). */
typedef void (*events_hook_fn)(void *conn);

/* n_sites: the inventory's sites (telemetry events exist only for a site a stream watches);
 * max_streams: the cap on open streams (events_open answers -EBUSY beyond it). */
int events_new(size_t n_sites, size_t max_streams, events_hook_fn suspend, events_hook_fn resume,
               struct events **out);
/* Ends every stream (their next read is the end of the stream) and wakes the parked ones, so
 * that a shutdown never waits for a client. */
void events_close(struct events *ev);
/* After the transport has released every stream. */
void events_free(struct events *ev);

/* Publishing (any thread; hub lock holders included). type: a short word; site_idx: the site
 * the event is about, or SIZE_MAX; data: one JSON object. A "telemetry" event with nobody
 * watching its site is dropped at once. Marks the site rows changed for the "sites" event. */
void events_publish(struct events *ev, const char *type, size_t site_idx, const char *data);
/* Only marks the site rows changed (a "sites" event within a second). */
void events_touch(struct events *ev);
/* 1 when a stream watches site_idx (its telemetry is worth formatting), else 0. */
int events_wanted(struct events *ev, size_t site_idx);

/* A new stream. site_idx: the site whose telemetry it wants, or SIZE_MAX for none;
 * last_id: the Last-Event-ID header (NULL or "" = none): the stream resumes after it when the
 * ring still holds what followed, else starts at the newest event (its hello says
 * "resumed":false and the client takes a snapshot over REST). keepalive_s: seconds between
 * keepalives. -EBUSY at the cap, -ESHUTDOWN once closed, -ENOMEM. */
int events_open(struct events *ev, size_t site_idx, const char *last_id, int keepalive_s,
                void *conn, struct events_stream **out);
/* Up to max bytes of the stream's text into buf; 0 after parking the stream (the suspend hook
 * has been called), -1 at its end (shutdown, or a slow reader dropped). */
ssize_t events_read(struct events_stream *s, char *buf, size_t max);
/* The transport has closed the stream. */
void events_release(struct events_stream *s);

/* Open streams and those dropped as slow readers since the start (for /metrics and tests). */
void events_stats(struct events *ev, size_t *open, uint64_t *dropped, uint64_t *last_id);

#endif
