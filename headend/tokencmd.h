/* tokencmd: the `der-headend token` command (add, list, revoke), run on the store without
 * starting any server (docs/operations.md, "Securing a deployment"). */
#ifndef HEADEND_TOKENCMD_H
#define HEADEND_TOKENCMD_H

#include <stddef.h>
#include <stdio.h>

/* The server's default store location into buf, or NULL when there is none. */
typedef const char *(*tokencmd_default_db)(char *buf, size_t len);

/* argv[0] is "token". The store is database_url when set (DATABASE_URL), else --db, else
 * what default_db says (asked only then: it may create the state directory). Returns the exit
 * status: 0, 1 (the store failed, no such token, name taken) or 2 (usage). */
int tokencmd_run(int argc, char **argv, const char *database_url, tokencmd_default_db default_db,
                 FILE *out, FILE *err);

#endif
