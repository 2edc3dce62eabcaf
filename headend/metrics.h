/* metrics: GET /metrics, the Prometheus text exposition of the hub's counters, connected
 * gateways, per-asset telemetry rate and lag, and dispatch outcomes. The caller holds the hub
 * lock and frees *out (malloc'd). */
#ifndef HEADEND_METRICS_H
#define HEADEND_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "headend/hub.h"

int metrics_render(const struct hub *h, int64_t now_ms, char **out, size_t *len);

#endif
