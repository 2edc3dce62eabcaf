/* relay: a TCP relay on loopback that can be cut, the uplink's path to the headend in a run
 * with headend_outage events (headend_loop.c). It listens on 127.0.0.1 (a port the kernel
 * picks), connects every accepted client to the target port and copies bytes both ways in its
 * own thread; relay_cut closes every connection and the listening socket (new connections are
 * refused, as with a headend that is gone), relay_restore listens on the same port again. Both
 * return once the thread has done it. The caller owns the relay (relay_free stops the thread). */
#ifndef DERLOOP_RELAY_H
#define DERLOOP_RELAY_H

#include <stddef.h>

struct relay;

/* NULL with err when the socket, the port or the thread could not be had. */
struct relay *relay_new(int target_port, char *err, size_t errlen);
int relay_port(const struct relay *r);
int relay_cut(struct relay *r);     /* 0, or -errno */
int relay_restore(struct relay *r); /* 0, or -errno (the port was taken meanwhile) */
void relay_free(struct relay *r);

#endif
