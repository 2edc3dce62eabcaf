/* webhook: see webhook.h.
 *
 * Why a hand-written client: one POST of a small JSON body to a URL the operator gives is all
 * that is needed, and the headend links no HTTP client (libcurl would be a new dependency for
 * this alone). The client resolves the host on a short-lived thread of its own (getaddrinfo
 * blocks for the resolver's whole timeout, 5 s x attempts, and has no deadline: a DNS server
 * that does not answer held the webhook thread, and the headend's shutdown, for that long), and
 * waits for it within the POST's deadline; a lookup given up finishes on its own and frees
 * itself. Then it connects without blocking and waits with poll, sends the request with
 * "Connection: close", and reads only the status line: every step counts against one
 * deadline, so a receiver that accepts and never answers costs timeout_ms, no more. */
#include "headend/webhook.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS   30000

struct body {
    char *text;
};

struct webhook {
    char host[256], path[512], url[800];
    int port;
    int timeout_ms, retries;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int stop;
    struct body q[WEBHOOK_QUEUE_MAX];
    size_t head, n;
    struct webhook_stats st;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int webhook_parse_url(const char *url, char *host, size_t hostlen, int *port, char *path,
                      size_t pathlen, char *err, size_t errlen)
{
    static const char scheme[] = "http://";
    if (!strncmp(url, "https://", 8)) {
        snprintf(err, errlen,
                 "--alert-webhook: https is not supported (http:// only: put a "
                 "local relay in front of an HTTPS receiver)");
        return -EINVAL;
    }
    if (strncmp(url, scheme, 7) != 0) {
        snprintf(err, errlen, "--alert-webhook: must start with http://, got \"%.100s\"", url);
        return -EINVAL;
    }
    const char *h = url + 7, *slash = strchr(h, '/');
    const char *end = slash ? slash : h + strlen(h);
    const char *colon = NULL;
    if (*h == '[') { /* [v6]:port */
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb) {
            snprintf(err, errlen, "--alert-webhook: unclosed [ in the host of \"%.100s\"", url);
            return -EINVAL;
        }
        colon = rb[1] == ':' ? rb + 1 : NULL;
        snprintf(host, hostlen, "%.*s", (int)(rb - h - 1), h + 1);
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        snprintf(host, hostlen, "%.*s", (int)((colon ? colon : end) - h), h);
    }
    *port = 80;
    if (colon) {
        char *e;
        long p = strtol(colon + 1, &e, 10);
        if (e != end || p < 1 || p > 65535) {
            snprintf(err, errlen, "--alert-webhook: bad port in \"%.100s\"", url);
            return -EINVAL;
        }
        *port = (int)p;
    }
    if (!host[0]) {
        snprintf(err, errlen, "--alert-webhook: no host in \"%.100s\"", url);
        return -EINVAL;
    }
    snprintf(path, pathlen, "%s", slash ? slash : "/");
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            snprintf(err, errlen,
                     "--alert-webhook: the path may not hold spaces or control "
                     "characters");
            return -EINVAL;
        }
    return 0;
}

static int left_ms(int64_t deadline)
{
    int64_t l = deadline - mono_ms();
    return l > 0 ? (int)l : 0;
}

/* Waits for events on fd until the deadline or webhook_free: 0, -ETIMEDOUT, -ECANCELED or
 * -errno. In slices of 100 ms that look at stop: a receiver that accepts and stalls used to
 * hold the headend's shutdown for the whole timeout (up to a minute). */
static int wait_fd(int fd, short events, int64_t deadline, const int *stop)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int ms = left_ms(deadline);
        if (ms == 0)
            return -ETIMEDOUT;
        if (__atomic_load_n(stop, __ATOMIC_RELAXED))
            return -ECANCELED;
        int r = poll(&p, 1, ms < 100 ? ms : 100);
        if (r == 0)
            continue;
        if (r > 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

/* One lookup, shared by the webhook thread and the thread that runs getaddrinfo: the last of
 * the two to let go frees it (the webhook thread may give up first). */
struct lookup {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int refs, done, rc;
    struct addrinfo *res;
    char host[256], port[8];
};

static void lookup_release(struct lookup *l)
{
    pthread_mutex_lock(&l->mu);
    int last = --l->refs == 0;
    pthread_mutex_unlock(&l->mu);
    if (!last)
        return;
    if (l->res)
        freeaddrinfo(l->res);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cond);
    free(l);
}

static void *lookup_run(void *arg)
{
    struct lookup *l = arg;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL;
    int g = getaddrinfo(l->host, l->port, &hints, &res);
    pthread_mutex_lock(&l->mu);
    l->rc = g;
    l->res = g ? NULL : res;
    l->done = 1;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mu);
    lookup_release(l);
    return NULL;
}

/* getaddrinfo within the deadline (and webhook_free): 0 with *res (the caller frees it), or a
 * gai error, EAI_AGAIN with *timed_out set when the deadline or the stop came first. */
static int resolve(const struct webhook *w, int64_t deadline, struct addrinfo **res, int *timed_out)
{
    *res = NULL;
    *timed_out = 0;
    struct lookup *l = calloc(1, sizeof(*l));
    if (!l)
        return EAI_MEMORY;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cond, NULL);
    snprintf(l->host, sizeof(l->host), "%s", w->host);
    snprintf(l->port, sizeof(l->port), "%d", w->port);
    l->refs = 2;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int started = pthread_create(&t, &at, lookup_run, l) == 0;
    pthread_attr_destroy(&at);
    if (!started) {
        l->refs = 1;
        lookup_release(l);
        return EAI_SYSTEM;
    }
    pthread_mutex_lock(&l->mu);
    while (!l->done && left_ms(deadline) > 0 && !__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
        struct timespec ts; /* slices of 100 ms: the stop is a flag, not a signal of this cond */
        clock_gettime(CLOCK_REALTIME, &ts);
        int ms = left_ms(deadline) < 100 ? left_ms(deadline) : 100;
        ts.tv_nsec += (long)ms * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&l->cond, &l->mu, &ts);
    }
    int rc = EAI_AGAIN;
    if (l->done) {
        rc = l->rc;
        *res = l->res;
        l->res = NULL;
    } else {
        *timed_out = 1;
    }
    pthread_mutex_unlock(&l->mu);
    lookup_release(l);
    return rc;
}

static int connect_to(const struct webhook *w, int64_t deadline, char *why, size_t whylen)
{
    struct addrinfo *res;
    int timed_out;
    int g = resolve(w, deadline, &res, &timed_out);
    if (timed_out) {
        snprintf(why, whylen, "cannot resolve %.64s: %s", w->host,
                 __atomic_load_n(&w->stop, __ATOMIC_RELAXED) ? "the headend is stopping"
                                                             : "no answer within the timeout");
        return -ETIMEDOUT;
    }
    if (g) {
        snprintf(why, whylen, "cannot resolve %.64s: %s", w->host, gai_strerror(g));
        return -EHOSTUNREACH;
    }
    int fd = -1, e = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            e = -errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
            e = -errno;
        } else if ((e = wait_fd(fd, POLLOUT, deadline, &w->stop)) == 0) {
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            e = -soerr;
        }
        if (e) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(why, whylen, "connect to %.64s:%d: %s", w->host, w->port, strerror(-e));
    return fd < 0 ? e : fd;
}

/* One POST: 0 when the receiver answered 2xx. */
static int post_once(const struct webhook *w, const char *body, char *why, size_t whylen)
{
    int64_t deadline = mono_ms() + w->timeout_ms;
    int fd = connect_to(w, deadline, why, whylen);
    if (fd < 0)
        return fd;
    size_t blen = strlen(body);
    char head[1024];
    int v6 = strchr(w->host, ':') != NULL; /* Host: [::1]:8080, not ::1:8080 (RFC 7230) */
    int hl = snprintf(head, sizeof(head),
                      "POST %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUser-Agent: der-headend\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      w->path, v6 ? "[" : "", w->host, v6 ? "]" : "", w->port, blen);
    const char *parts[2] = {head, body};
    size_t lens[2] = {(size_t)hl, blen};
    int e = 0;
    for (int i = 0; i < 2 && !e; i++) {
        size_t off = 0;
        while (off < lens[i] && !e) {
            ssize_t n = send(fd, parts[i] + off, lens[i] - off, MSG_NOSIGNAL);
            if (n > 0)
                off += (size_t)n;
            else if (n < 0 && errno == EAGAIN)
                e = wait_fd(fd, POLLOUT, deadline, &w->stop);
            else if (n < 0 && errno != EINTR)
                e = -errno;
        }
    }
    char resp[256] = "";
    size_t got = 0;
    while (!e && got < sizeof(resp) - 1 && !memchr(resp, '\n', got)) {
        ssize_t n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0)
            e = -ENODATA; /* closed before a status line */
        else if (errno == EAGAIN)
            e = wait_fd(fd, POLLIN, deadline, &w->stop);
        else if (errno != EINTR)
            e = -errno;
    }
    close(fd);
    resp[got] = '\0';
    int status = 0;
    if (e) {
        snprintf(why, whylen, "%s",
                 e == -ETIMEDOUT   ? "no answer within the timeout"
                 : e == -ENODATA   ? "the receiver closed the connection without an answer"
                 : e == -ECANCELED ? "the headend is stopping"
                                   : strerror(-e));
        return e;
    }
    /* three digits, read by hand: sscanf's %d on "HTTP/1.1 2000000000000" is undefined (it
     * said "HTTP status -1") */
    const char *sp = !strncmp(resp, "HTTP/1.", 7) ? strchr(resp, ' ') : NULL;
    if (sp && sp[1] >= '1' && sp[1] <= '5' && sp[2] >= '0' && sp[2] <= '9' && sp[3] >= '0' &&
        sp[3] <= '9' && (sp[4] == ' ' || sp[4] == '\r' || sp[4] == '\n' || !sp[4]))
        status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
    if (!status) {
        snprintf(why, whylen, "not an HTTP answer");
        return -EPROTO;
    }
    if (status < 200 || status > 299) {
        snprintf(why, whylen, "HTTP status %d", status);
        return -EPROTO;
    }
    return 0;
}

/* Sleeps until ms passed or webhook_free asks to stop (mu held). 1 when stopping. */
static int nap(struct webhook *w, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    while (!w->stop && pthread_cond_timedwait(&w->cond, &w->mu, &ts) == 0) {
    }
    return w->stop;
}

static void *run(void *arg)
{
    struct webhook *w = arg;
    int attempt = 0;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        if (!w->n) {
            pthread_cond_wait(&w->cond, &w->mu);
            continue;
        }
        char *text = w->q[w->head].text; /* stays queued (and owned there) while sent */
        pthread_mutex_unlock(&w->mu);
        char why[200] = "";
        int e = post_once(w, text, why, sizeof(why));
        pthread_mutex_lock(&w->mu);
        int done = e == 0 || attempt >= w->retries;
        if (e) {
            w->st.failures++;
            char ub[LOG_VALUE_MAX], wb[LOG_VALUE_MAX];
            log_event(LOG_WARN, "event=webhook_failed url=%s attempt=%d reason=%s result=%s",
                      log_escape(ub, sizeof(ub), w->url), attempt + 1,
                      log_escape(wb, sizeof(wb), why), done ? "dropped" : "retry");
        } else {
            w->st.sent++;
        }
        if (done) {
            w->st.dropped += e != 0;
            free(text);
            w->head = (w->head + 1) % WEBHOOK_QUEUE_MAX;
            w->n--;
            attempt = 0;
            continue;
        }
        int backoff = BACKOFF_FIRST_MS << (attempt < 6 ? attempt : 6);
        attempt++;
        nap(w, backoff < BACKOFF_MAX_MS ? backoff : BACKOFF_MAX_MS);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int webhook_new(const char *url, int timeout_ms, int retries, struct webhook **out, char *err,
                size_t errlen)
{
    *out = NULL;
    struct webhook *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int e = webhook_parse_url(url, w->host, sizeof(w->host), &w->port, w->path, sizeof(w->path),
                              err, errlen);
    if (e) {
        free(w);
        return e;
    }
    snprintf(w->url, sizeof(w->url), "%s", url);
    w->timeout_ms = timeout_ms;
    w->retries = retries;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        snprintf(err, errlen, "cannot start the webhook thread");
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cond);
        free(w);
        return -EAGAIN;
    }
    *out = w;
    return 0;
}

void webhook_free(struct webhook *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    __atomic_store_n(&w->stop, 1, __ATOMIC_RELAXED); /* read unlocked by wait_fd */
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL); /* at most one timeout_ms (a POST in flight) */
    for (size_t i = 0; i < w->n; i++)
        free(w->q[(w->head + i) % WEBHOOK_QUEUE_MAX].text);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
    free(w);
}

void webhook_post(struct webhook *w, const char *body)
{
    if (!w)
        return;
    char *copy = strdup(body);
    if (!copy)
        return;
    pthread_mutex_lock(&w->mu);
    if (w->n == WEBHOOK_QUEUE_MAX) {
        /* the head may be in flight on the thread: the newcomer is the one that goes */
        w->st.dropped++;
        pthread_mutex_unlock(&w->mu);
        free(copy);
        return;
    }
    w->q[(w->head + w->n) % WEBHOOK_QUEUE_MAX].text = copy;
    w->n++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

void webhook_get_stats(struct webhook *w, struct webhook_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    *out = w->st;
    out->queued = w->n;
    pthread_mutex_unlock(&w->mu);
}
