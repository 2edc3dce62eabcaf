/* controller: the site controller's cycle, in the style of a PLC scan: read every device into
 * the process image (online and stale marks), decide (the configured strategy), add operator
 * or headend commands, arbitrate by priority, apply the safety interlocks last, and write only
 * the setpoints that changed. Built from a site configuration; owns its devices and strategy;
 * its buses come from the caller (the transport: Modbus TCP in der-gateway, TCP or in-process
 * in the lockstep runner). Time is a parameter: the same code runs in real time (der-gateway)
 * and in the simulator's lockstep runner. */
#ifndef DERLOOP_CONTROLLER_H
#define DERLOOP_CONTROLLER_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/bus/bus.h"
#include "gateway/control/decision.h"
#include "gateway/devices/device.h"
#include "gateway/control/procimg.h"
#include "gateway/control/siteconf.h"

struct controller;

struct controller_opts {
    /* The bus for a device (required when there are devices): the caller's transport, e.g.
     * a Modbus TCP pool (gateway/bus/tcp_pool.h). The factory keeps ownership of what it
     * returns, which must outlive the controller; the controller names the device's unit on it
     * (bus_set_device) for the bus's log lines. NULL with err on failure. */
    struct bus *(*open_bus)(void *ctx, const struct device_cfg *dev, char *err, size_t errlen);
    void *bus_ctx;
    /* One log line per event (no newline), key=value with the site and asset. NULL = stderr. */
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
};

/* Validates the strategy, safety and split sections of cfg (errors name the field) and
 * creates the devices. cfg must outlive the controller. NULL with err on failure. */
struct controller *controller_new(const struct siteconf *cfg, const struct controller_opts *opts,
                                  char *err, size_t errlen);
void controller_free(struct controller *c);

/* The strategy-facing sections of a site configuration made running objects: the strategy
 * with its stacked constraints, the schedules, the safety interlocks and the split. controller_new
 * builds its own this way; controller_set_policy swaps another in between two cycles (a pushed or
 * reloaded configuration, gateway/control/confsync.h). policy_new: NULL with err naming the
 * field ("ORIGIN: params.kp: ..."); the policy keeps no pointer into cfg. */
struct controller_policy;
struct controller_policy *controller_policy_new(const struct siteconf *cfg, char *err,
                                                size_t errlen);
void controller_policy_free(struct controller_policy *p);
/* Takes p and frees the policy it replaces; devices, commands and written setpoints stay. */
void controller_set_policy(struct controller *c, struct controller_policy *p);

/* One cycle at now_ms. dm (may be NULL) receives the DecisionMetrics of the cycle. Returns 0,
 * or the number of device errors of this cycle as a negative number (the cycle still runs on
 * what it has: offline devices get their safe state). */
int controller_cycle(struct controller *c, int64_t now_ms, struct decision *dm);

/* The emergency stop (gateway/control/estop.h holds and persists it): while active, every
 * cycle takes every controllable device to its safe state above every strategy, schedule and
 * command (arbiter_estop; the interlocks still clamp). Takes effect from the next cycle. */
void controller_set_estop(struct controller *c, int active);
int controller_estop(const struct controller *c);

/* An operator or headend command: asset_id NULL = the whole site (split among batteries).
 * Holds at manual priority until expires_ms. Returns 0, or -ENOENT for an unknown asset. */
int controller_command(struct controller *c, const char *asset_id, double power_w,
                       int64_t expires_ms);

const struct procimg *controller_image(const struct controller *c);
size_t controller_n_devices(const struct controller *c);
struct device *controller_device(struct controller *c, size_t i);
const char *controller_strategy(const struct controller *c);
uint64_t controller_transactions(const struct controller *c); /* over all devices */
uint64_t controller_writes(const struct controller *c);       /* setpoint writes sent */
/* The result of the last cycle's write to device i: 0 (written, or nothing to write) or the
 * bus error of the failed write. */
int controller_write_rc(const struct controller *c, size_t i);

#endif
