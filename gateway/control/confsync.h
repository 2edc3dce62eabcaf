/* confsync: the running policy of a gateway (strategy, params, constraints, safety, split) as
 * the local configuration file with the headend's desired configuration laid over it
 * (docs/gateway-config.md, "Remote configuration and reload"). A desired configuration is a
 * JSON object {strategy, params, constraints, safety, schedules}: strategy (required),
 * params and constraints replace the file's; safety and schedules, when given, replace the
 * file's. Every change (a push, a SIGHUP reload, the persisted push at
 * start) is validated by siteconf and controller_policy_new and applied whole, or not at all.
 * A push is persisted as STATE_DIR/desired-config.json (write, fsync, rename) so a restart
 * offline keeps it. The caller owns the confsync (confsync_free); the controller stays its
 * caller's. */
#ifndef DERLOOP_CONFSYNC_H
#define DERLOOP_CONFSYNC_H

#include <stddef.h>
#include <stdint.h>

#define CONFSYNC_FILE "desired-config.json"

struct controller;
struct confsync;

/* Validates a desired configuration (JSON text) alone, with the gateway's own checks, over a
 * site that has none of its own sections (the headend's PUT /sites/:id/config). 0, or -EINVAL
 * with err = "config: FIELD: message, got VALUE" and field = FIELD ("" when the JSON itself
 * is bad). */
int confsync_check(const char *json, char *err, size_t errlen, char *field, size_t fieldlen);

/* path: the local configuration file (reloaded by confsync_reload); state_dir: where pushes
 * persist ("" = nowhere: a push lasts until the process ends). log: one key=value line. */
struct confsync *confsync_new(struct controller *ctl, const char *path, const char *state_dir,
                              void (*log)(void *ctx, const char *line), void *log_ctx);
/* The same over a configuration already in memory (file: a site configuration's root, copied;
 * origin names it in messages), persisting nowhere: the lockstep runner's, whose scenario
 * events push configurations (docs/scenario-format.md). confsync_reload then reads origin as a
 * file, so it is not for them. NULL when out of memory. */
struct cJSON;
struct confsync *confsync_new_json(struct controller *ctl, const struct cJSON *file,
                                   const char *origin, void (*log)(void *ctx, const char *line),
                                   void *log_ctx);
void confsync_free(struct confsync *cs);

/* At start: applies STATE_DIR/desired-config.json when there is one (a bad one is logged and
 * the file's policy stays). Returns the version running (0 = the file's). */
uint64_t confsync_start(struct confsync *cs);

/* A ConfigPush: validates and applies (between two cycles: the caller's thread runs them),
 * persists, and from then on reports version. 0, or -EINVAL with err naming the field (the
 * running policy and version stay). The version already running is acknowledged again
 * without being applied twice. */
int confsync_push(struct confsync *cs, uint64_t version, const char *json, char *err,
                  size_t errlen);

/* SIGHUP: reads the local file again and applies its policy (under the desired configuration,
 * if one was pushed). Other sections that changed (devices, poll period, uplink...) are named
 * in the log as needing a restart. 0, or the error (logged, and the old policy stays). */
int confsync_reload(struct confsync *cs, char *err, size_t errlen);

uint64_t confsync_version(const struct confsync *cs);

#endif
