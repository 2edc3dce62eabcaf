/* mbserver: the simulator's Modbus TCP server, one thread for every site.
 *
 * Shape: a flat array of connections (listening sockets and clients), waited on with epoll(7)
 * (the default) or poll(2) over a persistent pollfd array; never select: a thousand sites means
 * fds past FD_SETSIZE (docs/bus.md). Both backends fill one ready list, so the serving code
 * is shared; a connection closed during a pass is freed at its end.
 *
 * Each client has its own byte buffer. Frames are cut by the MBAP header here (7 bytes:
 * transaction id, protocol id, length, unit id), so a client that stalls mid-frame only holds
 * its own buffer and several frames in one read are all served. Every request is validated
 * here (function code, quantity, byte count, range, writability, the image's validator) and
 * only a request known to be good reaches modbus_reply: libmodbus 3.1.6 sleeps half a second
 * on some bad requests and had overflows on crafted ones. libmodbus is used as a formatter: one
 * modbus_t whose socket is set to the client's before each reply.
 *
 * Wire faults are read from the unit's struct wirefault at every request. A slow reply keeps
 * the request and its due time in the client and stops reading that client until it is sent,
 * so replies leave in request order; the poll timeout shrinks to the earliest due reply. */
#define _GNU_SOURCE /* accept4 */
#include "sim/wire/mbserver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/rtclock.h"

#define MBAP_LEN 7
/* MBAP length counts the unit id and the PDU (at most 253 bytes): 2..254. */
#define MBAP_LEN_MIN 2
#define MBAP_LEN_MAX 254
#define FRAME_MAX    (6 + MBAP_LEN_MAX)
/* Room for several pipelined frames per read; always holds at least one whole frame. */
#define CLIENT_BUF 2048
/* docs/bus.md: with 16-64 clients connecting at once small backlogs refused connects. */
#define LISTEN_BACKLOG 256
#define ACCEPT_BURST   64
/* How long accepting pauses when the process is out of descriptors. */
#define ACCEPT_PAUSE_MS 100
/* Ready events taken per epoll_wait; level-triggered, so the rest come on the next call. */
#define EPOLL_BATCH 256

#define FC_READ_HOLDING   0x03
#define FC_READ_INPUT     0x04
#define FC_WRITE_SINGLE   0x06
#define FC_WRITE_MULTIPLE 0x10
#define MAX_READ          125
#define MAX_WRITE         123

struct unit {
    struct regimage *img;
    const struct wirefault *wf;
};

struct endpoint {
    int port;
    char name[64];
    uint16_t slot[256]; /* unit id -> index + 1 into units; 0 = no such unit */
    struct unit *units;
    size_t n_units;
};

struct conn {
    int fd;
    int ep;        /* endpoint index */
    size_t idx;    /* position in the server's arrays */
    int listening; /* a listening socket, not a client */
    int dead;      /* closed during this pass; freed at its end (events may still name it) */
    struct conn *next_dead;
    char peer[64];
    const char *close_reason; /* set: closed at the end of this pass */
    int pending;              /* a slow reply is waiting for due_ms */
    int64_t due_ms;
    size_t pend_len;
    uint8_t pend[FRAME_MAX];
    size_t len; /* bytes in buf */
    uint8_t buf[CLIENT_BUF];
};

struct ready {
    struct conn *c;
    short revents; /* POLLIN, POLLHUP, POLLERR, POLLNVAL */
};

struct mbserver {
    struct mbserver_clock clock;
    enum mbserver_backend backend;
    int epfd;            /* MBSERVER_EPOLL */
    struct ready *ready; /* the current pass's ready connections */
    size_t ready_cap;
    struct conn *graveyard;
    modbus_t *ctx; /* reply formatter only; its socket is the current client's */
    struct endpoint *eps;
    size_t n_eps, cap_eps;
    struct pollfd *pfd; /* pfd[i] belongs to conns[i] (the poll backend waits on it) */
    struct conn **conns;
    size_t n, cap;
    size_t n_clients, n_pending;
    int accept_paused;
    int64_t accept_resume_ms;
    FILE *log;
    int log_level;
    int handled; /* requests in the current mbserver_poll */
    struct mbserver_stats st;
};

static int64_t now_ms(const struct mbserver *s)
{
    return s->clock.now_ms ? s->clock.now_ms(s->clock.ctx) : rtclock_monotonic_ms();
}

static void logf_(const struct mbserver *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void logf_(const struct mbserver *s, int level, const char *fmt, ...)
{
    if (level > s->log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vevent_to(s->log, level == MBSERVER_LOG_WARN ? LOG_WARN : LOG_INFO, fmt, ap);
    va_end(ap);
}

struct mbserver *mbserver_new(const struct mbserver_clock *clock)
{
    return mbserver_new_backend(clock, MBSERVER_EPOLL);
}

struct mbserver *mbserver_new_backend(const struct mbserver_clock *clock,
                                      enum mbserver_backend backend)
{
    struct mbserver *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (clock)
        s->clock = *clock;
    s->backend = backend;
    s->epfd = -1;
    if (backend == MBSERVER_EPOLL && (s->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        free(s);
        return NULL;
    }
    s->log_level = MBSERVER_LOG_CONN;
    /* The address is never connected to: the context only formats and sends replies. */
    s->ctx = modbus_new_tcp("127.0.0.1", 502);
    if (!s->ctx) {
        if (s->epfd >= 0)
            close(s->epfd);
        free(s);
        return NULL;
    }
    return s;
}

void mbserver_free(struct mbserver *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        close(s->conns[i]->fd);
        free(s->conns[i]);
    }
    free(s->conns);
    free(s->pfd);
    free(s->ready);
    if (s->epfd >= 0)
        close(s->epfd);
    for (size_t i = 0; i < s->n_eps; i++)
        free(s->eps[i].units);
    free(s->eps);
    modbus_set_socket(s->ctx, -1);
    modbus_free(s->ctx);
    free(s);
}

void mbserver_set_log(struct mbserver *s, FILE *log, int level)
{
    s->log = log;
    s->log_level = level;
}

int mbserver_set_endpoint_name(struct mbserver *s, int endpoint, const char *name)
{
    if (endpoint < 0 || (size_t)endpoint >= s->n_eps || !name)
        return -EINVAL;
    snprintf(s->eps[endpoint].name, sizeof(s->eps[endpoint].name), "%s", name);
    return 0;
}

size_t mbserver_n_clients(const struct mbserver *s)
{
    return s->n_clients;
}

void mbserver_get_stats(const struct mbserver *s, struct mbserver_stats *out)
{
    *out = s->st;
}

/* Appends a connection to the arrays; it is not polled for events until the next pass. */
static int conn_add(struct mbserver *s, struct conn *c)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct pollfd *pfd = realloc(s->pfd, cap * sizeof(*pfd));
        if (!pfd)
            return -ENOMEM;
        s->pfd = pfd;
        struct conn **conns = realloc(s->conns, cap * sizeof(*conns));
        if (!conns)
            return -ENOMEM;
        s->conns = conns;
        s->cap = cap;
    }
    short events = c->listening && s->accept_paused ? 0 : POLLIN;
    if (s->backend == MBSERVER_EPOLL) {
        struct epoll_event ev = {.events = events ? EPOLLIN : 0, .data.ptr = c};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            return -errno;
    }
    c->idx = s->n;
    s->conns[s->n] = c;
    s->pfd[s->n] = (struct pollfd){.fd = c->fd, .events = events, .revents = 0};
    s->n++;
    return 0;
}

/* Reading on or off (off while a slow reply waits, or accepting paused). */
static void set_readable(struct mbserver *s, struct conn *c, int on)
{
    s->pfd[c->idx].events = on ? POLLIN : 0;
    if (s->backend == MBSERVER_EPOLL) {
        struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.ptr = c};
        epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

static const char *ep_name(const struct mbserver *s, int ep)
{
    return s->eps[ep].name[0] ? s->eps[ep].name : "-";
}

/* Closes a client and moves the last connection into its slot (callers that walk the arrays
 * go from the end, so the moved one has been seen already). The struct lives on until the end
 * of the pass: a ready list may still name it. */
static void conn_close(struct mbserver *s, struct conn *c)
{
    size_t i = c->idx;
    logf_(s, MBSERVER_LOG_CONN, "event=disconnect site=%s port=%d peer=%s reason=%s clients=%zu",
          ep_name(s, c->ep), s->eps[c->ep].port, c->peer, c->close_reason, s->n_clients - 1);
    if (s->backend == MBSERVER_EPOLL)
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    if (c->pending)
        s->n_pending--;
    s->n_clients--;
    s->st.clients_closed++;
    c->dead = 1;
    c->next_dead = s->graveyard;
    s->graveyard = c;
    s->n--;
    if (i != s->n) {
        s->conns[i] = s->conns[s->n];
        s->pfd[i] = s->pfd[s->n];
        s->conns[i]->idx = i;
    }
}

int mbserver_listen(struct mbserver *s, const char *bind_addr, int port, int *bound_port)
{
    if (port < 0 || port > 65535)
        return -EINVAL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port_s[8];
    snprintf(port_s, sizeof(port_s), "%d", port);
    if (getaddrinfo(bind_addr ? bind_addr : "127.0.0.1", port_s, &hints, &res) != 0 || !res)
        return -EINVAL;

    int err = 0, one = 1;
    struct conn *c = NULL;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = -errno;
        goto fail;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        err = -errno;
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        err = -errno;
        goto fail;
    }
    int bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);

    if (s->n_eps == s->cap_eps) {
        size_t cap = s->cap_eps ? s->cap_eps * 2 : 16;
        struct endpoint *eps = realloc(s->eps, cap * sizeof(*eps));
        if (!eps) {
            err = -ENOMEM;
            goto fail;
        }
        s->eps = eps;
        s->cap_eps = cap;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        err = -ENOMEM;
        goto fail;
    }
    c->fd = fd;
    c->ep = (int)s->n_eps;
    c->listening = 1;
    snprintf(c->peer, sizeof(c->peer), "-");
    if ((err = conn_add(s, c)) < 0)
        goto fail;
    memset(&s->eps[s->n_eps], 0, sizeof(s->eps[0]));
    s->eps[s->n_eps].port = bound;
    s->n_eps++;
    freeaddrinfo(res);
    if (bound_port)
        *bound_port = bound;
    return c->ep;

fail:
    free(c);
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return err;
}

int mbserver_add_unit(struct mbserver *s, int endpoint, int unit_id, struct regimage *img,
                      const struct wirefault *wf)
{
    if (endpoint < 0 || (size_t)endpoint >= s->n_eps || unit_id < 0 || unit_id > 255 || !img)
        return -EINVAL;
    struct endpoint *ep = &s->eps[endpoint];
    if (ep->slot[unit_id])
        return -EEXIST;
    struct unit *u = realloc(ep->units, (ep->n_units + 1) * sizeof(*u));
    if (!u)
        return -ENOMEM;
    ep->units = u;
    ep->units[ep->n_units] = (struct unit){.img = img, .wf = wf};
    ep->n_units++;
    ep->slot[unit_id] = (uint16_t)ep->n_units;
    return 0;
}

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
    }
    snprintf(out, outlen, "%s:%d", host, port);
}

static void set_accepting(struct mbserver *s, int on)
{
    s->accept_paused = !on;
    for (size_t i = 0; i < s->n; i++)
        if (s->conns[i]->listening)
            set_readable(s, s->conns[i], on);
}

static void accept_clients(struct mbserver *s, struct conn *l)
{
    for (int k = 0; k < ACCEPT_BURST; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* Out of descriptors or memory: the backlog keeps the connection; try later
             * instead of spinning on a listening socket that stays readable. */
            logf_(s, MBSERVER_LOG_WARN, "event=accept_failed site=%s port=%d reason=%s",
                  ep_name(s, l->ep), s->eps[l->ep].port, strerror(errno));
            s->accept_resume_ms = now_ms(s) + ACCEPT_PAUSE_MS;
            set_accepting(s, 0);
            return;
        }
        int one = 1;
        /* Pipelined requests get one reply each: without TCP_NODELAY the second reply waits
         * for the client's delayed ACK (40 ms). */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = calloc(1, sizeof(*c));
        if (c) {
            c->fd = fd;
            c->ep = l->ep;
        }
        if (!c || conn_add(s, c) < 0) {
            free(c);
            close(fd);
            logf_(s, MBSERVER_LOG_WARN, "event=accept_failed site=%s port=%d reason=no_memory",
                  ep_name(s, l->ep), s->eps[l->ep].port);
            return;
        }
        format_peer(&ss, c->peer, sizeof(c->peer));
        s->n_clients++;
        s->st.clients_accepted++;
        logf_(s, MBSERVER_LOG_CONN, "event=connect site=%s port=%d peer=%s clients=%zu",
              ep_name(s, c->ep), s->eps[c->ep].port, c->peer, s->n_clients);
    }
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

int mbserver_frame_len(const uint8_t *buf, size_t len)
{
    if (len < MBAP_LEN)
        return 0;
    uint16_t proto = be16(buf + 2), mlen = be16(buf + 4);
    if (proto != 0 || mlen < MBAP_LEN_MIN || mlen > MBAP_LEN_MAX)
        return -EPROTO;
    size_t flen = 6u + mlen;
    return len < flen ? 0 : (int)flen;
}

/* The exception reply is formatted here, not by libmodbus: modbus_reply_exception computes
 * the function byte as `function + 0x80` in an int and stores it in a byte, so a request with
 * the high bit already set (0x80..0xFF) came back wrapped (0x83 -> 0x03, which reads as a
 * normal reply with a garbage payload). We answer fc | 0x80 instead: for 0x01..0x7F that is
 * the standard fc + 0x80 (Modbus application protocol 7); for fc >= 0x80 it is fc itself. No
 * function code has the high bit set, so there is no standard answer; fc | 0x80 keeps the
 * one property every client tests (high bit = exception) and still echoes the request. */
size_t mbserver_format_exception(const uint8_t *req, int code, uint8_t out[MBSERVER_EXC_LEN])
{
    /* A scenario's odd code (outside 1..0x0B) becomes "server failure". */
    if (code < 1 || code >= MODBUS_EXCEPTION_MAX)
        code = MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE;
    out[0] = req[0]; /* transaction id */
    out[1] = req[1];
    out[2] = 0; /* protocol id */
    out[3] = 0;
    out[4] = 0; /* length: unit id, function, code */
    out[5] = 3;
    out[6] = req[MBAP_LEN - 1];
    out[7] = (uint8_t)(req[MBAP_LEN] | 0x80);
    out[8] = (uint8_t)code;
    return MBSERVER_EXC_LEN;
}

static void reply_exception(struct mbserver *s, struct conn *c, const uint8_t *req, int code)
{
    uint8_t rsp[MBSERVER_EXC_LEN];
    size_t n = mbserver_format_exception(req, code, rsp);
    /* Nine bytes on a socket whose previous replies were all sent: a short write means the
     * peer is not reading at all, which the client loop treats like a failed libmodbus send. */
    if (send(c->fd, rsp, n, MSG_NOSIGNAL) != (ssize_t)n) {
        c->close_reason = "send_failed";
        return;
    }
    s->st.exceptions++;
}

int mbserver_check_request(struct regimage *img, const uint8_t *f, size_t flen)
{
    if (flen < MBAP_LEN + 1)
        return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
    const uint8_t *pdu = f + MBAP_LEN;
    size_t plen = flen - MBAP_LEN;
    switch (pdu[0]) {
    case FC_READ_HOLDING:
    case FC_READ_INPUT: {
        if (plen != 5)
            return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
        uint16_t addr = be16(pdu + 1), n = be16(pdu + 3);
        /* Modbus application protocol 6.3: quantity outside 1..125 is exception 3. */
        if (n < 1 || n > MAX_READ)
            return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
        return regimage_check_read(img, addr, n);
    }
    case FC_WRITE_SINGLE: {
        if (plen != 5)
            return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
        uint16_t addr = be16(pdu + 1), v = be16(pdu + 3);
        return regimage_check_write(img, addr, 1, &v);
    }
    case FC_WRITE_MULTIPLE: {
        if (plen < 6)
            return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
        uint16_t addr = be16(pdu + 1), n = be16(pdu + 3);
        size_t bc = pdu[5];
        /* 6.12: quantity 1..123 and byte count = 2 x quantity, else exception 3. */
        if (n < 1 || n > MAX_WRITE || bc != 2u * n || plen != 6 + bc)
            return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
        uint16_t v[MAX_WRITE];
        for (uint16_t i = 0; i < n; i++)
            v[i] = be16(pdu + 6 + 2 * i);
        return regimage_check_write(img, addr, n, v);
    }
    default: /* every other code, 0x80..0xFF included: exception 1 */
        return MODBUS_EXCEPTION_ILLEGAL_FUNCTION;
    }
}

/* Answers a request to a unit whose wire is healthy (or whose slow reply is due): the request
 * is checked completely, then handed to libmodbus with the unit's image. */
static void respond(struct mbserver *s, struct conn *c, const struct unit *u, const uint8_t *f,
                    size_t flen)
{
    struct regimage *img = u->img;
    modbus_mapping_t *map = img->map, input_alias;
    int code = mbserver_check_request(img, f, flen);
    if (code)
        return reply_exception(s, c, f, code);
    uint8_t fc = f[MBAP_LEN];
    if (fc == FC_READ_INPUT) {
        /* Input registers read the holding image: a mapping that aliases it. */
        input_alias = *map;
        input_alias.start_input_registers = map->start_registers;
        input_alias.nb_input_registers = map->nb_registers;
        input_alias.tab_input_registers = map->tab_registers;
        map = &input_alias;
    }
    modbus_set_socket(s->ctx, c->fd);
    if (modbus_reply(s->ctx, f, (int)flen, map) < 0) {
        c->close_reason = "send_failed";
        return;
    }
    s->st.replies++;
    if (fc == FC_WRITE_SINGLE || fc == FC_WRITE_MULTIPLE)
        img->writes++;
}

static const struct unit *find_unit(const struct mbserver *s, const struct conn *c, uint8_t id)
{
    const struct endpoint *ep = &s->eps[c->ep];
    return ep->slot[id] ? &ep->units[ep->slot[id] - 1] : NULL;
}

/* One complete frame: unit lookup, then the unit's wire fault decides what the wire shows. */
static void handle_frame(struct mbserver *s, struct conn *c, const uint8_t *f, size_t flen,
                         int64_t now)
{
    s->st.requests++;
    s->handled++;
    const struct unit *u = find_unit(s, c, f[MBAP_LEN - 1]);
    if (!u)
        return reply_exception(s, c, f, MODBUS_EXCEPTION_GATEWAY_TARGET);
    enum wire_mode mode = u->wf ? u->wf->mode : WIRE_OK;
    switch (mode) {
    case WIRE_TIMEOUT:
    case WIRE_OFFLINE:
        s->st.dropped++;
        return;
    case WIRE_EXCEPTION:
        return reply_exception(s, c, f, u->wf->code);
    case WIRE_SLOW:
        if (u->wf->delay_ms > 0) {
            memcpy(c->pend, f, flen);
            c->pend_len = flen;
            c->due_ms = now + u->wf->delay_ms;
            c->pending = 1;
            s->n_pending++;
            set_readable(s, c, 0); /* replies stay in order: read nothing meanwhile */
            return;
        }
        break;
    case WIRE_OK:
        break;
    }
    respond(s, c, u, f, flen);
}

/* Serves the whole frames in the client's buffer, keeps a partial one for the next read. */
static void process_buffer(struct mbserver *s, struct conn *c, int64_t now)
{
    size_t off = 0;
    while (!c->pending && !c->close_reason && c->len - off >= MBAP_LEN) {
        const uint8_t *f = c->buf + off;
        int flen = mbserver_frame_len(f, c->len - off);
        if (flen < 0) {
            s->st.bad_frames++;
            logf_(s, MBSERVER_LOG_WARN,
                  "event=bad_frame site=%s port=%d peer=%s protocol_id=%u length=%u",
                  ep_name(s, c->ep), s->eps[c->ep].port, c->peer, be16(f + 2), be16(f + 4));
            c->close_reason = "bad_frame";
            break;
        }
        if (flen == 0)
            break;
        handle_frame(s, c, f, (size_t)flen, now);
        off += (size_t)flen;
    }
    if (off) {
        memmove(c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
}

static void client_io(struct mbserver *s, struct conn *c, short revents, int64_t now)
{
    if (revents & POLLNVAL) {
        c->close_reason = "invalid_fd";
        return;
    }
    if (!(revents & (POLLIN | POLLHUP | POLLERR)))
        return;
    if (c->pending) {
        /* Not reading while a slow reply waits: only a dead peer wakes us here. */
        if (revents & (POLLHUP | POLLERR))
            c->close_reason = (revents & POLLERR) ? "socket_error" : "hangup";
        return;
    }
    ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
    if (n == 0) {
        c->close_reason = "eof";
        return;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        c->close_reason = errno == ECONNRESET ? "reset" : "read_error";
        return;
    }
    c->len += (size_t)n;
    process_buffer(s, c, now);
}

/* Sends the slow replies that are due, then serves what their clients sent meanwhile. Returns
 * the earliest due time still waiting (INT64_MAX when none). */
static int64_t serve_due(struct mbserver *s, int64_t now)
{
    int64_t next = INT64_MAX;
    if (!s->n_pending)
        return next;
    for (size_t i = s->n; i-- > 0;) {
        struct conn *c = s->conns[i];
        if (c->pending && c->due_ms <= now) {
            c->pending = 0;
            s->n_pending--;
            set_readable(s, c, 1);
            const struct unit *u = find_unit(s, c, c->pend[MBAP_LEN - 1]);
            if (u) /* units are never removed; the check keeps it obviously safe */
                respond(s, c, u, c->pend, c->pend_len);
            if (!c->close_reason)
                process_buffer(s, c, now);
        }
        if (c->close_reason)
            conn_close(s, c);
        else if (c->pending && c->due_ms < next)
            next = c->due_ms;
    }
    return next;
}

/* Frees the connections closed during this pass. */
static void bury(struct mbserver *s)
{
    while (s->graveyard) {
        struct conn *c = s->graveyard;
        s->graveyard = c->next_dead;
        free(c);
    }
}

static int ready_reserve(struct mbserver *s, size_t n)
{
    if (n <= s->ready_cap)
        return 0;
    struct ready *r = realloc(s->ready, n * sizeof(*r));
    if (!r)
        return -ENOMEM;
    s->ready = r;
    s->ready_cap = n;
    return 0;
}

/* Waits for events and lists the ready connections in s->ready. Returns their number or
 * -errno. epoll costs per ready socket, poll per socket: with a thousand sites (two thousand
 * sockets and more) poll's scan dominates the server's CPU (tests/bench/bench_serve.c). */
static int wait_ready(struct mbserver *s, int timeout_ms)
{
    if (s->backend == MBSERVER_EPOLL) {
        struct epoll_event ev[EPOLL_BATCH];
        if (ready_reserve(s, EPOLL_BATCH) < 0)
            return -ENOMEM;
        int n = epoll_wait(s->epfd, ev, EPOLL_BATCH, timeout_ms);
        if (n < 0)
            return -errno;
        for (int k = 0; k < n; k++) {
            uint32_t e = ev[k].events;
            s->ready[k].c = ev[k].data.ptr;
            s->ready[k].revents =
                (short)(((e & EPOLLIN) ? POLLIN : 0) | ((e & EPOLLHUP) ? POLLHUP : 0) |
                        ((e & EPOLLERR) ? POLLERR : 0));
        }
        return n;
    }
    if (ready_reserve(s, s->n ? s->n : 1) < 0)
        return -ENOMEM;
    int rc = poll(s->pfd, (nfds_t)s->n, timeout_ms);
    if (rc < 0)
        return -errno;
    int n = 0;
    for (size_t i = 0; i < s->n && n < rc; i++) {
        if (!s->pfd[i].revents)
            continue;
        s->ready[n++] = (struct ready){s->conns[i], s->pfd[i].revents};
        s->pfd[i].revents = 0;
    }
    return n;
}

int mbserver_poll(struct mbserver *s, int timeout_ms)
{
    s->handled = 0;
    int64_t now = now_ms(s);
    if (s->accept_paused && now >= s->accept_resume_ms)
        set_accepting(s, 1);
    int64_t next = serve_due(s, now);
    int64_t t = timeout_ms < 0 ? INT64_MAX : timeout_ms;
    if (next != INT64_MAX && next - now < t)
        t = next - now > 0 ? next - now : 0;
    if (s->accept_paused && s->accept_resume_ms - now < t)
        t = s->accept_resume_ms - now > 0 ? s->accept_resume_ms - now : 0;
    if (s->handled) /* slow replies released buffered requests: don't sleep now */
        t = 0;

    int n = wait_ready(s, t == INT64_MAX ? -1 : (int)t);
    if (n < 0) {
        bury(s);
        return n == -EINTR ? s->handled : n;
    }
    now = now_ms(s);
    for (int k = 0; k < n; k++) {
        struct conn *c = s->ready[k].c;
        if (c->dead)
            continue;
        if (c->listening) {
            accept_clients(s, c);
            continue;
        }
        client_io(s, c, s->ready[k].revents, now);
        if (c->close_reason)
            conn_close(s, c);
    }
    serve_due(s, now_ms(s));
    bury(s);
    return s->handled;
}
