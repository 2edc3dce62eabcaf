/* rtclock: see rtclock.h. */
#include "common/rtclock.h"

#include <time.h>

int64_t rtclock_monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t rtclock_monotonic_ms(void)
{
    return rtclock_monotonic_us() / 1000;
}

int64_t rtclock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
