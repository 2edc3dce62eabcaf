/* export: the `der-headend export` command: a site's history over a time range, read from the
 * store (SQLite file or DATABASE_URL) without starting any server, written as the files
 * `der-sim import --site-json` reads (docs/incidents.md, "From a headend store"):
 *   records.csv  unix_ms, grid_w, pv_w, <battery>_w, <battery>_soc, evse_w, boiler_w
 *   site.json    the site's assets and limits (the inventory its gateway registers against),
 *                the dispatches created in the range with their states and TTLs, the spans
 *                each asset reported offline, and the gateway's sessions.
 *   details.jsonl the type-specific details of each sample; decisions.jsonl the gateway's
 *                decision records (docs/protocol.md, "Decisions"); commands.jsonl the
 *                per-asset commands created in the range with their acks.
 * The one store reader stays in der-headend: der-sim gains no database dependency. */
#ifndef HEADEND_EXPORT_H
#define HEADEND_EXPORT_H

#include <stdio.h>

#include "headend/tokencmd.h"

/* argv[0] is "export". Returns the exit status: 0, 1 (store, inventory or files failed) or 2
 * (usage). */
int exportcmd_run(int argc, char **argv, const char *database_url, tokencmd_default_db default_db,
                  FILE *out, FILE *err);

#endif
