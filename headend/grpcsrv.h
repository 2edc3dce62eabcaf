/* grpcsrv: the gRPC transport of the headend (gRPC core C API, docs/protocol.md). One
 * thread owns the completion queue and drives every gateway stream; each stream feeds the
 * hub and gets a link the hub (and the REST thread, under the hub lock) uses to send.
 * Calls to any method other than /der.v1.Headend/Connect get UNIMPLEMENTED at once.
 * The server borrows the hub; grpc_init/grpc_shutdown belong to main. */
#ifndef HEADEND_GRPCSRV_H
#define HEADEND_GRPCSRV_H

#include <stddef.h>

#include "headend/config.h"
#include "headend/hub.h"

struct grpcsrv;

/* Binds cfg->grpc_listen (port 0 = any free port, returned in *port) and starts the thread.
 * 0 or -errno with a message in err. */
int grpcsrv_start(struct hub *h, const struct headend_config *cfg, struct grpcsrv **out, int *port,
                  char *err, size_t errlen);
/* Graceful stop: no new streams, grace period, cancel the rest, wait for every stream to be
 * freed, then destroy the server and drain the queue. Frees g. */
void grpcsrv_stop(struct grpcsrv *g);

#endif
