/* store_pg: the PostgreSQL backend named by DATABASE_URL is not built yet; store_open reports
 * that plainly instead of silently falling back to SQLite (an operator who set DATABASE_URL
 * expects a shared store). The interface in store.h is what a libpq backend fills. */
#include <errno.h>
#include <stdio.h>

#include "headend/store.h"

int store_pg_open(const char *conninfo, struct store **out, char *err, size_t errlen)
{
    (void)conninfo;
    *out = NULL;
    snprintf(err, errlen,
             "PostgreSQL store not available in this build (unset DATABASE_URL "
             "to use the SQLite store)");
    return -ENOTSUP;
}
