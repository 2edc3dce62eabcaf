/* cluster: several der-headend processes on one PostgreSQL (docs/operations.md, "Several
 * headends"). One thread per headend with its own connection to the database:
 *   - routing: a dispatch that no stream of this headend can take is announced with
 *     NOTIFY derloop_dispatch, payload its id (the row is in the dispatch table already);
 *     every headend LISTENs, and the one that holds the target's stream sends it (only while
 *     the row is still QUEUED). Acks update the shared row, so every headend sees the
 *     lifecycle. No broker of our own: PostgreSQL carries the announcement.
 *   - the emergency stop and configuration pushes the same way: a stop set or released
 *     anywhere is the site's row in site_estop, announced with NOTIFY derloop_estop (payload
 *     the site id); every headend reads the row (so every one shows it), and the one holding
 *     the site's stream sends it. A new desired configuration version (site_config) is
 *     announced with NOTIFY derloop_config (payload the site id); the holder pushes it. The
 *     gateway's reports (ConfigReport, EstopReport) go into the holder's presence row, so GET
 *     from any headend shows them. The stop rows are read once before the thread starts
 *     (before any gateway can register here), again at every reconnect and every 5 heartbeats
 *     (with the desired versions of the sites held here), as the dispatches are.
 *   - commands the same way (NOTIFY derloop_command, payload the command id; the row in
 *     commands is QUEUED): the holder sends it, the acks update the shared row.
 *   - announced ids are read in batches (one query per up to 2,048 ids, only rows still
 *     QUEUED and not expired) without the hub lock, so a flood of NOTIFYs from any client of
 *     the database costs queries, never the hub's latency.
 *   - expiry across headends is decided with the database's clock (dispatch.expires_ms is
 *     written in it: store_pg.c), never a headend's own.
 *   - a newer session (larger sessions.id, the database's sequence) on another live headend
 *     for a site held here ends ours and closes its stream (a gateway that failed over while
 *     our connection to it is half-open).
 *   - presence: every heartbeat this headend renews its row in cluster_nodes (expiry in the
 *     database's clock) and writes one cluster_presence row per site whose gateway it holds,
 *     with the site's fleet-view row; it reads the others' rows into the hub
 *     (hub_site_remote), so /sites, /sites/:id and group dispatch see the whole fleet.
 *     A headend that stops heartbeating (kill -9) is gone for the others after the expiry.
 *   - after a lost connection (PostgreSQL restart) it reconnects every second, LISTENs again
 *     and re-scans the QUEUED dispatches of the sites it holds: notifications sent while it
 *     was away are lost. Every 5 heartbeats it also sweeps the QUEUED rows of its sites (one
 *     query), so an announcement lost any other way costs seconds, not the dispatch's ttl. */
#ifndef HEADEND_CLUSTER_H
#define HEADEND_CLUSTER_H

#include <stddef.h>

#include "headend/hub.h"

struct cluster;

/* Before hub_new (which ends this node's open sessions): 0, or -EEXIST with err when another
 * live headend already uses cfg->node_id (its heartbeat moves within two heartbeats; a row of
 * a predecessor killed moments ago does not), or -errno when PostgreSQL cannot be reached. */
int cluster_check_node(const char *conninfo, const struct headend_config *cfg, char *err,
                       size_t errlen);
/* Starts the thread for hub h on conninfo (a postgres:// URL) with the hub's node id,
 * heartbeat and expiry (headend_config). The first connection is made before returning: 0,
 * or -errno with err (the headend then refuses to start: a silent half-cluster is worse). */
int cluster_start(struct hub *h, const char *conninfo, struct cluster **out, char *err,
                  size_t errlen);
/* Stops the thread and removes this headend's rows (the others see its sites free at once).
 * NULL is fine. Call without the hub lock. */
void cluster_stop(struct cluster *c);

#endif
