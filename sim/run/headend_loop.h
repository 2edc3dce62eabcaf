/* headend_loop: a scenario's dispatch events in the lockstep runner. Without a "headend"
 * object they go straight to each site's controller (through gateway/uplink/dispatch.c); with one,
 * the real der-headend runs as a child process (in-memory store, ports picked by the kernel),
 * each site's gateway gets an uplink to it, and every dispatch goes through POST /dispatch
 * and the gRPC stream; the runner waits (bounded) until the gateway has received it, so runs
 * stay deterministic. headend_outage and headend_freeze events cut the uplinks' stream (through
 * a relay, relay.h) or stop the child for a span, the runner waiting until the uplinks show it;
 * the dispatches of a span reach the gateway when it ends, their TTL run in simulated time.
 * The caller owns the object; headend_loop_free stops the child.
 * $DERLOOP_HEADEND_TLS=DIR runs the headend and the uplinks with mutual TLS: DIR holds
 * ca.pem, headend.pem/headend.key (valid for 127.0.0.1) and <gateway_id>.pem/.key for each
 * gateway (gw-<site id>, docs/scenario-format.md). */
#ifndef DERLOOP_HEADEND_LOOP_H
#define DERLOOP_HEADEND_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gateway/control/controller.h"
#include "gateway/control/decision.h"
#include "gateway/control/siteconf.h"
#include "sim/scenario/scenario.h"

#define HEADEND_LOOP_WAIT_MS 5000 /* longest wait for a setpoint to reach the gateway */

struct headend_loop;

/* ev: the digested events.log (a deterministic line per dispatch); log: undigested detail
 * (headend ports, setpoint ids, uplink events), may be NULL. Starts the headend when the
 * scenario asks for it: $DERLOOP_HEADEND_BIN, else der-headend beside the running binary. */
int headend_loop_new(const struct scenario *sc, FILE *ev, FILE *log, struct headend_loop **out,
                     char *err, size_t errlen);

/* Site i of the scenario (replica id site_id, file id base_id) with its gateway. */
int headend_loop_add_site(struct headend_loop *h, const char *site_id, const char *base_id,
                          const struct siteconf *conf, struct controller *ctl, char *err,
                          size_t errlen);

/* Before the cycles of the tick [t, t + step): the dispatch events due (at <= t, the same rule
 * as fault events) are applied with controller time now_ms = t + step. Returns 0, or -errno
 * with err filled (headend refused it, or it did not arrive within HEADEND_LOOP_WAIT_MS). */
int headend_loop_tick(struct headend_loop *h, int64_t t, int64_t now_ms, char *err, size_t errlen);

/* After site i's controller_cycle: acks with the cycle's allocations, telemetry. */
void headend_loop_after_cycle(struct headend_loop *h, size_t site, const struct decision *dm,
                              int64_t now_ms);

/* The telemetry messages the uplinks dropped during headend_outage spans (the ended ones, and
 * the one under way); NaN without a headend in the loop. The KPI telemetry_dropped. */
double headend_loop_telemetry_dropped(const struct headend_loop *h);

void headend_loop_free(struct headend_loop *h);

#endif
