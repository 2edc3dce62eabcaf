/* device: one field device as the gateway drives it: a driver (data: which points it reads
 * and writes) over a register bus. device_poll reads the device into its process-image entry
 * (values scaled, site signs); device_write sends a setpoint. SunSpec devices are discovered by
 * walking their model chain on first contact and after every failure, never by fixed offsets.
 * The caller owns the device (device_free) and the bus (which must outlive the device). */
#ifndef DERLOOP_DEVICE_H
#define DERLOOP_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/bus/bus.h"
#include "gateway/control/procimg.h"
#include "gateway/control/siteconf.h"

struct device;

/* Returns NULL with err filled when the configuration names no known driver. */
struct device *device_new(const struct device_cfg *cfg, struct bus *bus, char *err, size_t errlen);
void device_free(struct device *d);

/* Reads the device at now_ms into out (asset id, type, measurements; online = 1 on success,
 * last_ok_ms = now_ms). On failure returns the bus code, sets out->online = 0 and leaves the
 * previous measurements in place; the next poll discovers the device again. */
int device_poll(struct device *d, int64_t now_ms, struct procimg_dev *out);

/* Writes a setpoint in site signs (battery W + discharge; pv: a limit in W; evse: W turned
 * into a current limit; boiler: a power limit in W). NaN releases the device to its own
 * behaviour (battery WSetEna 0, pv limit disabled, evse default current, boiler rated power).
 * Returns 0 or the bus code. */
int device_write(struct device *d, double setpoint_w, int64_t now_ms);

/* Per-asset commands (docs/operations.md, "Commands"). set_output, charge and discharge are
 * setpoints (W), which the caller applies at manual priority; the others are register writes
 * (device_command). */
enum device_cmd {
    DEVICE_CMD_START,
    DEVICE_CMD_STOP,
    DEVICE_CMD_RESET,
    DEVICE_CMD_SET_OUTPUT,
    DEVICE_CMD_CHARGE,
    DEVICE_CMD_DISCHARGE,
    DEVICE_CMD_SET_TEMPERATURE,
    DEVICE_CMD_N
};
const char *device_cmd_name(enum device_cmd c); /* "start", ...; "?" */
int device_cmd_parse(const char *name);         /* enum device_cmd, or -EINVAL */
/* The driver's command table: NULL when a device of this configuration takes c, else why it
 * cannot ("battery has no temperature setpoint"). */
const char *device_cmd_refusal(const struct device_cfg *cfg, enum device_cmd c);
/* Writes a register command between two cycles: start, stop, reset, set_temperature (value in
 * degC). what receives the write ("802.SetOp=DISCONNECT"), or why it was refused. Returns 0,
 * -ENOTSUP (refused: the table, a setpoint command, or a device without the point),
 * -ENOTCONN before the first successful poll, or the bus code. */
int device_command(struct device *d, enum device_cmd c, double value, char *what, size_t len);

/* Transactions (reads + writes attempted) since creation: the runner's figure per tick. */
uint64_t device_transactions(const struct device *d);

/* The device's registers as the gateway last read them: *start and *count describe the
 * mirror (a SunSpec device: from its base address; a fixed map: from 0); valid[i] says that
 * register i is part of what every poll reads (the rest is the discovery snapshot). For the
 * lockstep runner's check
 * that the gateway's view equals the simulator's. NULL before the first discovery. */
const uint16_t *device_mirror(const struct device *d, uint16_t *start, size_t *count,
                              const uint8_t **valid);

/* The register blocks every poll reads (absolute addresses), at most max of them: the part of
 * the mirror that device_mirror's valid[] marks. Returns how many there are (0 before the
 * first discovery). */
size_t device_polled_blocks(const struct device *d, uint16_t *addr, uint16_t *n, size_t max);

const struct device_cfg *device_cfg(const struct device *d);

#endif
