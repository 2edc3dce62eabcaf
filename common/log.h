/* log: operator log lines of all three binaries (der-headend, der-gateway, der-sim serve) on
 * stderr, one line per event, key=value fields (docs/operations.md, "Logs"):
 *   2024-05-01T12:00:00.123Z level=info event=connect gateway=gw-1 site=s-1 peer=...
 * Thread-safe (one fprintf per line). Callers pass the fields from `event=` on. Never used for
 * simulated outputs (der-sim run's events.log has simulated times and is digested).
 *
 * Every value that came from outside (a peer, a URL, an id, a reason a gateway sent) goes
 * through log_escape first, so that it stays one value of one line: a request for
 * `/x%0Alevel=error event=store_down` must not forge a line or a field. */
#ifndef DERLOOP_LOG_H
#define DERLOOP_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level min);
/* As a last line of defence, control characters left in the formatted line (a call site
 * that forgot log_escape) are replaced by '?': one call is always one line. */
void log_event(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same line to out instead of stderr (NULL = stderr). */
void log_vevent_to(FILE *out, enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Room for any escaped value: longer values are cut (see log_escape). */
#define LOG_VALUE_MAX 256

/* log_escape: s as one logfmt value, for a "%s" after `key=`. Returns out (always
 * NUL-terminated when outlen > 0), so it can sit in the argument list:
 *   char pb[LOG_VALUE_MAX];
 *   log_event(LOG_INFO, "event=http_error path=%s", log_escape(pb, sizeof(pb), path));
 * A value of only [A-Za-z0-9] and -._:/@+,%[]() is written as it is; anything else (empty,
 * a space, '=', '"', '\\', control characters, bytes >= 0x7F) is written in double quotes
 * with \" \\ \n \r \t and \xHH (every other byte < 0x20 and >= 0x7F) escapes. The result
 * never contains a control character, a newline or an unescaped quote. A value that does not
 * fit in outlen is cut at a character boundary and ends in "..." (inside the quotes).
 * s == NULL is written as "-". log_escape_n takes a length and so also shows embedded NULs
 * (as \x00). */
const char *log_escape(char *out, size_t outlen, const char *s);
const char *log_escape_n(char *out, size_t outlen, const char *s, size_t len);

/* log_to: what every gateway library part does with its log callback (controller, bus,
 * uplink, confsync, estop, commands, the site host): one formatted line (at most 1023 bytes, cut
 * beyond) handed to fn(ctx, line), or written to stderr when fn is NULL. The callback decides the
 * level and the format (der-gateway's main turns it into a log_event line). */
void log_to(void (*fn)(void *ctx, const char *line), void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
