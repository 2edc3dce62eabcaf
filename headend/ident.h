/* ident: the one rule for ids that reach the headend from outside (asset, site, gateway and
 * setpoint ids, in REST bodies and URLs and in a gateway's Register). An id is 1..63 bytes
 * (INV_ID_MAX - 1) of valid UTF-8 without control characters: no NUL (C strings and cJSON
 * would silently cut the id there and act on a different one: "bat-1\u0000evil" became
 * "bat-1"), no C0 control (0x01-0x1F: line breaks forge log lines and confuse every text
 * format downstream), no DEL and no C1 control (U+0080..U+009F). */
#ifndef HEADEND_IDENT_H
#define HEADEND_IDENT_H

#include <stddef.h>

/* Checks the len bytes at s (len counts any embedded NUL: pass the decoded length, not
 * strlen). Returns 0 when s is a valid id, else -EINVAL with why (if why && n) saying what is
 * wrong and where, e.g. "contains a control character (0x00) at byte 5". */
int ident_valid(const char *s, size_t len, char *why, size_t n);

#endif
