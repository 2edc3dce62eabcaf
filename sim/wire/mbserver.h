/* mbserver: a Modbus TCP server for many sites in one thread, built on libmodbus in server
 * mode and epoll or poll(2) (never select: hundreds of sockets). Each endpoint is a listening
 * socket (one per site); each unit id on it is one device's register image. Requests are framed
 * and validated here before libmodbus replies; wire faults (no reply, exception, slow reply,
 * offline) are applied per unit. Time comes from an injected clock. Owns its sockets. */
#ifndef DERLOOP_MBSERVER_H
#define DERLOOP_MBSERVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sim/wire/asset.h"
#include "sim/wire/regimage.h"

struct mbserver;

struct mbserver_clock {
    int64_t (*now_ms)(void *ctx); /* monotonic milliseconds */
    void *ctx;
};

struct mbserver_stats {
    uint64_t requests, replies, exceptions, dropped, bad_frames;
    uint64_t clients_accepted, clients_closed;
};

/* clock NULL = the process's monotonic clock (common/rtclock.h). */
struct mbserver *mbserver_new(const struct mbserver_clock *clock);
/* The readiness backend: epoll (the default of mbserver_new; its cost grows with the ready
 * sockets, not all of them, which matters at a thousand sites) or poll(2). Same behaviour. */
enum mbserver_backend { MBSERVER_EPOLL, MBSERVER_POLL };
struct mbserver *mbserver_new_backend(const struct mbserver_clock *clock,
                                      enum mbserver_backend backend);
void mbserver_free(struct mbserver *s);
/* Listens on bind_addr:port (port 0 = any free port); *bound_port gets the port. Returns the
 * endpoint id (>= 0) or -errno. */
int mbserver_listen(struct mbserver *s, const char *bind_addr, int port, int *bound_port);
/* Serves img as unit_id on endpoint; wf (may be NULL) is read at every request. */
int mbserver_add_unit(struct mbserver *s, int endpoint, int unit_id, struct regimage *img,
                      const struct wirefault *wf);
/* Waits up to timeout_ms for activity and serves it (accepts, requests, due slow replies).
 * Returns the number of requests handled, or -errno. */
int mbserver_poll(struct mbserver *s, int timeout_ms);
void mbserver_get_stats(const struct mbserver *s, struct mbserver_stats *out);

/* Log lines (one per event, key=value) go to `log` (NULL = stderr) when their level is at most
 * `level`: MBSERVER_LOG_WARN for bad frames and socket errors, MBSERVER_LOG_CONN adds every
 * connect and disconnect (the default). */
enum { MBSERVER_LOG_QUIET = 0, MBSERVER_LOG_WARN = 1, MBSERVER_LOG_CONN = 2 };
void mbserver_set_log(struct mbserver *s, FILE *log, int level);
/* Names an endpoint (e.g. the site id) in its log lines. Returns 0 or -EINVAL. */
int mbserver_set_endpoint_name(struct mbserver *s, int endpoint, const char *name);
/* Currently connected clients, over all endpoints. */
size_t mbserver_n_clients(const struct mbserver *s);

/* The server's request handling as pure functions (unit tests and tests/fuzz use them; the
 * server itself goes through exactly these). A frame is the MBAP header (7 bytes) + PDU. */
#define MBSERVER_EXC_LEN 9
/* Length of the frame at the start of buf: > 0 when it is all there, 0 when more bytes are
 * needed, -EPROTO when the header is no Modbus TCP request (protocol id not 0, or MBAP length
 * outside 2..254); the server closes such a client. */
int mbserver_frame_len(const uint8_t *buf, size_t len);
/* Checks a whole frame (flen from mbserver_frame_len) against a unit's image: 0 when libmodbus
 * may answer it from img, else the exception code to answer (1 illegal function, also for
 * every code 0x80..0xFF; 2 address or read-only; 3 quantity, byte count, size, or the image's
 * validator). May call img->validate, never writes the image. */
int mbserver_check_request(struct regimage *img, const uint8_t *frame, size_t flen);
/* The exception reply to the frame req: MBAP with req's transaction and unit id, function byte
 * req_fc | 0x80 (for 0x80..0xFF that is the request's own byte: see mbserver.c), then code
 * (codes outside 1..0x0B become 4, server failure). Returns MBSERVER_EXC_LEN. */
size_t mbserver_format_exception(const uint8_t *req, int code, uint8_t out[MBSERVER_EXC_LEN]);

#endif
