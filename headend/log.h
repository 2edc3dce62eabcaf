/* log: operator log lines on stderr, one line per event, key=value fields:
 *   2024-05-01T12:00:00.123Z level=info event=connect gateway=gw-1 site=s-1 peer=...
 * Thread-safe (one fprintf per line). Callers pass the fields after `event=`. */
#ifndef HEADEND_LOG_H
#define HEADEND_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level min);
void log_event(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
