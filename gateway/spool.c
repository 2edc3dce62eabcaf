/* spool: see spool.h.
 *
 * Layout: DIR/NAME.NNNNNNNNNN.spool, segment numbers increasing; each record is a 4-byte
 * little-endian length and the bytes. Only the newest segment is appended to, only the oldest
 * is read; a segment fully read is deleted. Dropping whole segments (an eighth of the bound)
 * instead of single records keeps every operation an append or an unlink, never a rewrite.
 * The read position lives in memory: after a restart the oldest segment is replayed from its
 * start, so a record may be sent twice but never lost (the headend keys telemetry by seq). */
#include "gateway/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_SEGS (4 * SPOOL_SEGMENTS + 4)

struct seg {
    uint32_t id;
    uint64_t bytes, records;
};

struct spool {
    char dir[512], name[128];
    uint64_t max_bytes, seg_max;
    struct seg seg[MAX_SEGS]; /* oldest first */
    size_t n;
    uint64_t read_off, read_recs; /* in seg[0] */
    uint32_t peeked;              /* length of the record last peeked, 0 = none */
    int wfd;                      /* appends to seg[n-1] */
    uint32_t wfd_id;
    int rfd; /* reads seg[0] */
    uint32_t rfd_id;
    uint64_t dropped;
};

static void seg_path(const struct spool *s, uint32_t id, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s.%010u.spool", s->dir, s->name, id);
}

static void close_fds(struct spool *s)
{
    if (s->wfd >= 0)
        close(s->wfd);
    if (s->rfd >= 0)
        close(s->rfd);
    s->wfd = s->rfd = -1;
}

/* Deletes the oldest segment; what was unread in it is counted as dropped when `drop`. */
static void remove_oldest(struct spool *s, int drop)
{
    char p[700];
    if (drop)
        s->dropped += s->seg[0].records - s->read_recs;
    if (s->rfd >= 0 && s->rfd_id == s->seg[0].id) {
        close(s->rfd);
        s->rfd = -1;
    }
    if (s->wfd >= 0 && s->wfd_id == s->seg[0].id) {
        close(s->wfd);
        s->wfd = -1;
    }
    seg_path(s, s->seg[0].id, p, sizeof p);
    unlink(p);
    memmove(&s->seg[0], &s->seg[1], (s->n - 1) * sizeof s->seg[0]);
    s->n--;
    s->read_off = s->read_recs = 0;
    s->peeked = 0;
}

/* Counts the records of an existing segment and cuts a torn last record (a crash mid-write). */
static int scan_segment(struct spool *s, struct seg *g)
{
    char p[700];
    seg_path(s, g->id, p, sizeof p);
    int fd = open(p, O_RDWR);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    uint64_t off = 0, size = (uint64_t)st.st_size;
    g->records = 0;
    for (;;) {
        uint8_t h[4];
        if (off + 4 > size || pread(fd, h, 4, (off_t)off) != 4)
            break;
        uint32_t n =
            (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
        if (n == 0 || n > SPOOL_MAX_RECORD || off + 4 + n > size)
            break;
        off += 4 + n;
        g->records++;
    }
    if (off < size && ftruncate(fd, (off_t)off) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    close(fd);
    g->bytes = off;
    return 0;
}

static int seg_cmp(const void *a, const void *b)
{
    const struct seg *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

int spool_open(const char *dir, const char *name, uint64_t max_bytes, struct spool **out)
{
    *out = NULL;
    if (!dir || !*dir || !name || !*name || strchr(name, '/') || max_bytes < 4096)
        return -EINVAL;
    struct spool *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->wfd = s->rfd = -1;
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->max_bytes = max_bytes;
    s->seg_max = max_bytes / SPOOL_SEGMENTS;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        int e = -errno;
        free(s);
        return e;
    }
    DIR *d = opendir(dir);
    if (!d) {
        int e = -errno;
        free(s);
        return e;
    }
    size_t nl = strlen(name);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned id;
        char tail[16];
        if (strncmp(de->d_name, name, nl) != 0 || de->d_name[nl] != '.' ||
            sscanf(de->d_name + nl + 1, "%10u.%15s", &id, tail) != 2 || strcmp(tail, "spool"))
            continue;
        if (s->n == MAX_SEGS) /* more than we would ever write: keep the newest */
            break;
        s->seg[s->n++].id = id;
    }
    closedir(d);
    qsort(s->seg, s->n, sizeof s->seg[0], seg_cmp);
    for (size_t i = 0; i < s->n; i++) {
        int rc = scan_segment(s, &s->seg[i]);
        if (rc) {
            free(s);
            return rc;
        }
    }
    *out = s;
    return 0;
}

void spool_close(struct spool *s)
{
    if (!s)
        return;
    close_fds(s);
    free(s);
}

static uint64_t total_bytes(const struct spool *s)
{
    uint64_t t = 0;
    for (size_t i = 0; i < s->n; i++)
        t += s->seg[i].bytes;
    return t;
}

int spool_push(struct spool *s, const void *rec, size_t len)
{
    uint64_t need = 4 + (uint64_t)len;
    if (len == 0 || len > SPOOL_MAX_RECORD || need > s->seg_max)
        return -EMSGSIZE;
    if (s->n == 0 || s->seg[s->n - 1].bytes + need > s->seg_max) {
        if (s->n == MAX_SEGS)
            remove_oldest(s, 1);
        uint32_t id = s->n ? s->seg[s->n - 1].id + 1 : 1;
        s->seg[s->n++] = (struct seg){id, 0, 0};
    }
    struct seg *g = &s->seg[s->n - 1];
    if (s->wfd < 0 || s->wfd_id != g->id) {
        char p[700];
        if (s->wfd >= 0)
            close(s->wfd);
        seg_path(s, g->id, p, sizeof p);
        s->wfd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (s->wfd < 0)
            return -errno;
        s->wfd_id = g->id;
    }
    uint8_t h[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
    struct iovec iov[2] = {{h, 4}, {(void *)rec, len}};
    ssize_t w = writev(s->wfd, iov, 2);
    if (w != (ssize_t)need) {
        int e = w < 0 ? -errno : -EIO;
        if (w > 0 && ftruncate(s->wfd, (off_t)g->bytes) < 0)
            e = -errno; /* a torn record is also cut at the next open */
        return e;
    }
    g->bytes += need;
    g->records++;
    /* The bound: drop the oldest segments (never the one being written). */
    while (total_bytes(s) > s->max_bytes && s->n > 1)
        remove_oldest(s, 1);
    return 0;
}

int spool_peek(struct spool *s, void *buf, size_t cap, size_t *len)
{
    for (;;) {
        if (s->n == 0)
            return -ENOENT;
        if (s->read_off < s->seg[0].bytes)
            break;
        remove_oldest(s, 0); /* fully read */
    }
    if (s->rfd < 0 || s->rfd_id != s->seg[0].id) {
        char p[700];
        if (s->rfd >= 0)
            close(s->rfd);
        seg_path(s, s->seg[0].id, p, sizeof p);
        s->rfd = open(p, O_RDONLY | O_CLOEXEC);
        if (s->rfd < 0)
            return -errno;
        s->rfd_id = s->seg[0].id;
    }
    uint8_t h[4];
    if (pread(s->rfd, h, 4, (off_t)s->read_off) != 4)
        return -EIO;
    uint32_t n = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    *len = n;
    if (n > cap)
        return -EMSGSIZE;
    if (pread(s->rfd, buf, n, (off_t)s->read_off + 4) != (ssize_t)n)
        return -EIO;
    s->peeked = n;
    return 0;
}

int spool_pop(struct spool *s)
{
    if (!s->peeked || s->n == 0)
        return -ENOENT;
    s->read_off += 4 + (uint64_t)s->peeked;
    s->read_recs++;
    s->peeked = 0;
    if (s->read_off >= s->seg[0].bytes)
        remove_oldest(s, 0);
    return 0;
}

uint64_t spool_records(const struct spool *s)
{
    uint64_t t = 0;
    for (size_t i = 0; i < s->n; i++)
        t += s->seg[i].records;
    return t - (s->n ? s->read_recs : 0);
}

uint64_t spool_bytes(const struct spool *s)
{
    return total_bytes(s);
}

uint64_t spool_dropped(const struct spool *s)
{
    return s->dropped;
}
