/* W4: N clock_gettime(CLOCK_MONOTONIC) calls; checks that the clock never
 * goes back and does advance. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 5000000;
    struct timespec ts;
    long long prev = -1, first = 0, backwards = 0, failed = 0;
    for (long i = 0; i < n; i++) {
        if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) { failed++; continue; }
        long long t = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
        if (prev < 0) first = t;
        else if (t < prev) backwards++;
        prev = t;
    }
    int ok = failed == 0 && backwards == 0 && prev > first;
    fprintf(stderr, "w4 calls=%ld failed=%lld backwards=%lld advanced=%d\n",
            n, failed, backwards, prev > first);
    return ok ? 0 : 1;
}
