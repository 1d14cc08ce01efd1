/* Sleeps every way libc offers and prints, per way, "<name> <requested ns>
 * <measured ns>" (measured on CLOCK_MONOTONIC). Each way reaches
 * poll_oneoff with a clock subscription: relative monotonic (nanosleep,
 * usleep, sleep, clock_nanosleep), absolute monotonic and absolute realtime
 * (clock_nanosleep with TIMER_ABSTIME). */
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static int64_t now(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void report(const char *name, int64_t requested, int64_t start, int rc) {
    printf("%s %lld %lld %d\n", name, (long long)requested,
           (long long)(now(CLOCK_MONOTONIC) - start), rc);
}

int main(void) {
    struct timespec ts = {0, 30000000};  /* 30 ms */
    int64_t t = now(CLOCK_MONOTONIC);
    int rc = nanosleep(&ts, NULL);
    report("nanosleep", 30000000, t, rc);

    t = now(CLOCK_MONOTONIC);
    rc = usleep(20000);
    report("usleep", 20000000, t, rc);

    t = now(CLOCK_MONOTONIC);
    rc = (int)sleep(1);
    report("sleep", 1000000000, t, rc);

    ts.tv_sec = 0; ts.tv_nsec = 25000000;
    t = now(CLOCK_MONOTONIC);
    rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
    report("clock_nanosleep_monotonic", 25000000, t, rc);

    t = now(CLOCK_MONOTONIC);
    int64_t deadline = now(CLOCK_MONOTONIC) + 40000000;
    ts.tv_sec = deadline / 1000000000; ts.tv_nsec = deadline % 1000000000;
    rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    report("clock_nanosleep_abs_monotonic", 40000000, t, rc);

    t = now(CLOCK_MONOTONIC);
    deadline = now(CLOCK_REALTIME) + 35000000;
    ts.tv_sec = deadline / 1000000000; ts.tv_nsec = deadline % 1000000000;
    rc = clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL);
    report("clock_nanosleep_abs_realtime", 35000000, t, rc);

    /* A deadline in the past returns at once. */
    t = now(CLOCK_MONOTONIC);
    ts.tv_sec = 0; ts.tv_nsec = 1;
    rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    report("clock_nanosleep_past", 0, t, rc);
    return 0;
}
