/* rtclock: the process's wall and monotonic clocks, the one place that reads them (real-time
 * serving, the gateway's real-time host and default bus clock, logs); simulation and control
 * logic get time as a parameter. */
#ifndef DERLOOP_RTCLOCK_H
#define DERLOOP_RTCLOCK_H

#include <stdint.h>

int64_t rtclock_monotonic_ms(void);
int64_t rtclock_monotonic_us(void);
int64_t rtclock_wall_ms(void); /* Unix milliseconds */
/* The monotonic clock us microseconds from now, as the absolute timespec that
 * pthread_cond_timedwait wants on a CLOCK_MONOTONIC condition variable. */
struct timespec;
void rtclock_monotonic_deadline(int64_t us, struct timespec *out);

#endif
