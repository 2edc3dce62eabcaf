/* relay: see relay.h.
 *
 * One thread owns every socket; the caller's thread only sends it a command byte over a pipe
 * and waits for the reply byte, so a cut is complete (every connection closed, the port no
 * longer listening) when relay_cut returns, and the runner can then wait for the uplink to see
 * it. The traffic is the gRPC stream of a few gateways: a blocking copy of what one poll round
 * read is enough (no buffering beyond one read). */
#define _GNU_SOURCE
#include "sim/run/relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RELAY_MAX_PAIRS 64

struct relay {
    int target_port, port;
    int lfd; /* the listening socket; -1 while cut */
    int cmd[2], ack[2];
    int pair[RELAY_MAX_PAIRS][2]; /* client, upstream; -1 = free */
    pthread_t th;
    int started;
};

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return -errno;
    /* the port's accepted connections we closed sit in TIME_WAIT: listening again needs this */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = loopback(port);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 16) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static void close_pair(struct relay *r, int i)
{
    for (int k = 0; k < 2; k++)
        if (r->pair[i][k] >= 0) {
            close(r->pair[i][k]);
            r->pair[i][k] = -1;
        }
}

static void accept_one(struct relay *r)
{
    int c = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return;
    int u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = loopback(r->target_port);
    if (u < 0 || connect(u, (struct sockaddr *)&a, sizeof a) < 0) {
        if (u >= 0)
            close(u);
        close(c);
        return;
    }
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (int i = 0; i < RELAY_MAX_PAIRS; i++)
        if (r->pair[i][0] < 0) {
            r->pair[i][0] = c;
            r->pair[i][1] = u;
            return;
        }
    close(u);
    close(c);
}

/* Copies what is readable on pair i's side k to the other side; 0 at EOF or an error. */
static int copy(struct relay *r, int i, int k)
{
    char buf[65536];
    ssize_t n = read(r->pair[i][k], buf, sizeof buf);
    if (n <= 0)
        return 0;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = send(r->pair[i][!k], buf + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w <= 0)
            return 0;
        off += w;
    }
    return 1;
}

/* A command from the caller: 'c' cut, 'r' restore, 'q' quit. The reply is 0 or an errno. */
static int command(struct relay *r, char c)
{
    unsigned char rc = 0;
    if (c == 'c' || c == 'q') {
        for (int i = 0; i < RELAY_MAX_PAIRS; i++)
            close_pair(r, i);
        if (r->lfd >= 0)
            close(r->lfd);
        r->lfd = -1;
    } else if (c == 'r' && r->lfd < 0) {
        int fd = listen_on(r->port);
        if (fd < 0)
            rc = (unsigned char)-fd;
        else
            r->lfd = fd;
    }
    if (write(r->ack[1], &rc, 1) != 1)
        return -1;
    return c == 'q' ? -1 : 0;
}

static void *run(void *arg)
{
    struct relay *r = arg;
    for (;;) {
        struct pollfd p[2 + 2 * RELAY_MAX_PAIRS];
        int idx[2 + 2 * RELAY_MAX_PAIRS];
        nfds_t n = 0;
        p[n++] = (struct pollfd){r->cmd[0], POLLIN, 0};
        if (r->lfd >= 0)
            p[n++] = (struct pollfd){r->lfd, POLLIN, 0};
        nfds_t first = n;
        for (int i = 0; i < RELAY_MAX_PAIRS; i++)
            for (int k = 0; k < 2 && r->pair[i][0] >= 0; k++) {
                idx[n] = 2 * i + k;
                p[n++] = (struct pollfd){r->pair[i][k], POLLIN, 0};
            }
        if (poll(p, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (p[0].revents) {
            char c;
            if (read(r->cmd[0], &c, 1) != 1 || command(r, c))
                return NULL;
            continue; /* the sockets polled may be closed now */
        }
        for (nfds_t j = first; j < n; j++) {
            int i = idx[j] / 2, k = idx[j] % 2;
            if (p[j].revents && r->pair[i][0] >= 0 && !copy(r, i, k))
                close_pair(r, i);
        }
        if (first == 2 && p[1].revents)
            accept_one(r);
    }
}

struct relay *relay_new(int target_port, char *err, size_t errlen)
{
    struct relay *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "relay: out of memory");
        return NULL;
    }
    r->target_port = target_port;
    r->cmd[0] = r->cmd[1] = r->ack[0] = r->ack[1] = -1;
    for (int i = 0; i < RELAY_MAX_PAIRS; i++)
        r->pair[i][0] = r->pair[i][1] = -1;
    r->lfd = listen_on(0);
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    if (r->lfd < 0 || getsockname(r->lfd, (struct sockaddr *)&a, &al) < 0 ||
        pipe2(r->cmd, O_CLOEXEC) < 0 || pipe2(r->ack, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "relay: cannot listen on 127.0.0.1: %s",
                 strerror(r->lfd < 0 ? -r->lfd : errno));
        relay_free(r);
        return NULL;
    }
    r->port = ntohs(a.sin_port);
    if (pthread_create(&r->th, NULL, run, r)) {
        snprintf(err, errlen, "relay: cannot start its thread");
        relay_free(r);
        return NULL;
    }
    r->started = 1;
    return r;
}

int relay_port(const struct relay *r)
{
    return r->port;
}

static int ask(struct relay *r, char c)
{
    unsigned char rc;
    if (write(r->cmd[1], &c, 1) != 1 || read(r->ack[0], &rc, 1) != 1)
        return -EIO;
    return -(int)rc;
}

int relay_cut(struct relay *r)
{
    return ask(r, 'c');
}

int relay_restore(struct relay *r)
{
    return ask(r, 'r');
}

void relay_free(struct relay *r)
{
    if (!r)
        return;
    if (r->started) {
        ask(r, 'q');
        pthread_join(r->th, NULL);
    } else if (r->lfd >= 0) {
        close(r->lfd);
    }
    for (int k = 0; k < 2; k++) {
        if (r->cmd[k] >= 0)
            close(r->cmd[k]);
        if (r->ack[k] >= 0)
            close(r->ack[k]);
    }
    free(r);
}
