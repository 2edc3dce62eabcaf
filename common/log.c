/* log: a UTC timestamp, the level, then the caller's key=value fields on one line. stderr is
 * unbuffered, so each line leaves in one write even with two threads logging. Values from
 * outside are escaped by log_escape (logfmt style: bare when safe, else quoted). */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level min_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level min)
{
    min_level = min;
}

void log_event(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vevent_to(stderr, level, fmt, ap);
    va_end(ap);
}

void log_vevent_to(FILE *out, enum log_level level, const char *fmt, va_list ap)
{
    if (level < min_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[1024];
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level]);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    /* One event, one line, whatever a caller passed unescaped. */
    for (char *p = line; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7F)
            *p = '?';
    fprintf(out ? out : stderr, "%s\n", line);
    if (out && out != stderr) /* a file is buffered: the line should be there when read */
        fflush(out);
}

/* Characters that need no quoting in a value: none of them can end the value (space), start
 * another field ('='), open a quoted string or an escape, or break the line. */
static int bare_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("-._:/@+,%[]()", c));
}

const char *log_escape_n(char *out, size_t outlen, const char *s, size_t len)
{
    if (!outlen)
        return out;
    if (!s) {
        snprintf(out, outlen, "-");
        return out;
    }
    int bare = len > 0;
    for (size_t i = 0; i < len && bare; i++)
        bare = bare_ok((unsigned char)s[i]);
    if (bare && len < outlen) {
        memcpy(out, s, len);
        out[len] = 0;
        return out;
    }
    /* Quoted. Each input byte takes at most 4 output bytes (\xHH); o never passes the room
     * kept for the closing `..."` and the NUL, so a cut value still closes its quotes. */
    static const char hex[] = "0123456789abcdef";
    const size_t tail = 5; /* ..." and NUL */
    size_t o = 0;
    if (outlen < 2 + tail) { /* too small for anything useful: still a valid value */
        snprintf(out, outlen, "\"\"");
        return out;
    }
    out[o++] = '"';
    size_t i = 0;
    for (; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[4];
        size_t k;
        if (c == '"' || c == '\\') {
            e[0] = '\\', e[1] = (char)c, k = 2;
        } else if (c == '\n') {
            e[0] = '\\', e[1] = 'n', k = 2;
        } else if (c == '\r') {
            e[0] = '\\', e[1] = 'r', k = 2;
        } else if (c == '\t') {
            e[0] = '\\', e[1] = 't', k = 2;
        } else if (c < 0x20 || c >= 0x7F) {
            e[0] = '\\', e[1] = 'x', e[2] = hex[c >> 4], e[3] = hex[c & 15], k = 4;
        } else {
            e[0] = (char)c, k = 1;
        }
        /* The rest must fit with the closing quote (and the NUL); else cut here with "...". */
        int last = i + 1 == len;
        if (o + k + (last ? 2 : tail) > outlen)
            break;
        memcpy(out + o, e, k);
        o += k;
    }
    if (i < len) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = 0;
    return out;
}

const char *log_escape(char *out, size_t outlen, const char *s)
{
    return log_escape_n(out, outlen, s, s ? strlen(s) : 0);
}

void log_to(void (*fn)(void *ctx, const char *line), void *ctx, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (fn)
        fn(ctx, line);
    else
        fprintf(stderr, "%s\n", line);
}
