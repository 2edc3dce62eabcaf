/* commands: the per-asset commands the headend sent (docs/operations.md, "Commands") and what
 * became of each: SENT, then the gateway's CommandAcks (RECEIVED, APPLIED, REJECTED with the
 * reason, EXPIRED, FAILED), or EXPIRED here when no final ack came before its expiry. Held in
 * memory, the newest COMMANDS_MAX; the hub also stores each change (store.h command_put), so
 * GET /commands/:id answers after a restart (an older one is read back from the store into
 * this table). The hub owns the table and calls it under its lock. */
#ifndef HEADEND_COMMANDS_H
#define HEADEND_COMMANDS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "headend/store.h"

#define COMMANDS_MAX      4096
#define COMMAND_ACKS_MAX  8
#define COMMAND_NAME_MAX  32
#define COMMAND_TTL_S_DEF 300
#define COMMAND_TTL_S_MAX (7 * 86400)

struct command_ack {
    int state; /* enum dispatch_state: the SetpointAck.State numbers + 100 */
    char detail[STORE_TEXT_MAX];
    int64_t at_ms;
};

struct command_rec {
    char id[STORE_ID_MAX];
    char site_id[STORE_ID_MAX];
    char asset_id[STORE_ID_MAX];
    char gateway_id[STORE_ID_MAX];
    char command[COMMAND_NAME_MAX];
    double value; /* NaN when the command takes none */
    int64_t created_ms, expires_ms, updated_ms;
    int state; /* enum dispatch_state: SENT, then the acks' */
    char detail[STORE_TEXT_MAX];
    int64_t session_id; /* the session it was sent on */
    char requested_by[STORE_ID_MAX];
    size_t n_acks;
    struct command_ack acks[COMMAND_ACKS_MAX]; /* the first ones, in order */
    /* posted here for a gateway whose stream is on another headend (several headends): that
     * one sends it and records the acks in the shared store, so GET re-reads the store until
     * the state is final. Not in the JSON. */
    int routed;
};

struct commands;

struct commands *commands_new(void);
void commands_free(struct commands *c);

/* Whether name is a command the API takes (the gateway's driver decides per device), and
 * whether it needs a value. -1 unknown, 0 no value, 1 a value. */
int commands_takes_value(const char *name);
/* The names, for an error message: "start, stop, ...". */
const char *commands_names(void);

/* A new record (the oldest is forgotten when the table is full), its id made from now_ms and a
 * counter so that ids are not reused after a restart. */
struct command_rec *commands_add(struct commands *c, int64_t now_ms);
struct command_rec *commands_get(struct commands *c, const char *id);
/* A CommandAck from the gateway: 0, or -ENOENT for an unknown id. A final state is kept. */
int commands_ack(struct commands *c, const char *id, int state, const char *detail, int64_t now_ms);
/* Records still waiting (SENT, RECEIVED) past their expiry become EXPIRED; returns how many.
 * each (may be NULL) is called with every record that changed. */
size_t commands_expire(struct commands *c, int64_t now_ms,
                       void (*each)(void *ctx, const struct command_rec *r), void *ctx);

/* The JSON of a command (GET /commands/:id; with_session: also session_id, for the store). */
cJSON *command_rec_json(const struct command_rec *r, int with_session);
/* A record from command_rec_json's object: 0 or -EINVAL. */
int command_rec_from_json(const cJSON *o, struct command_rec *out);
/* Puts a stored record into the table (the oldest forgotten when full) unless its id is there;
 * returns the table's record. */
struct command_rec *commands_restore(struct commands *c, const struct command_rec *r);

#endif
