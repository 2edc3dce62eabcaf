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

void rtclock_monotonic_deadline(int64_t us, struct timespec *out)
{
    clock_gettime(CLOCK_MONOTONIC, out);
    out->tv_sec += us / 1000000;
    out->tv_nsec += (long)(us % 1000000) * 1000;
    if (out->tv_nsec >= 1000000000) {
        out->tv_sec++;
        out->tv_nsec -= 1000000000;
    }
}
