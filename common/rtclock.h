/* rtclock: the process's wall and monotonic clocks, the one place in sim/ and reports/ that reads
 * them (real-time serving only; simulation logic gets time as a parameter). */
#ifndef DERLOOP_RTCLOCK_H
#define DERLOOP_RTCLOCK_H

#include <stdint.h>

int64_t rtclock_monotonic_ms(void);
int64_t rtclock_monotonic_us(void);
int64_t rtclock_wall_ms(void); /* Unix milliseconds */

#endif
