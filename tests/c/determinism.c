/* What changes from run to run on a real host: the clocks, a sleep's
 * length, random bytes, the order of a directory listing. Prints each, one
 * per line, so two runs can be compared byte for byte.
 *
 *   determinism            everything below, listing /dir if it is there
 *   determinism sleep NS   the monotonic clock before and after nanosleep(NS)
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

static long long ns_of(clockid_t id) {
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) {
        perror("clock_gettime");
        exit(2);
    }
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "sleep") == 0) {
        long long ns = atoll(argv[2]);
        long long before = ns_of(CLOCK_MONOTONIC);
        struct timespec ts = {ns / 1000000000LL, ns % 1000000000LL};
        nanosleep(&ts, NULL);
        long long after = ns_of(CLOCK_MONOTONIC);
        printf("before %lld\nafter %lld\nslept %lld\n", before, after, after - before);
        return 0;
    }
    struct timespec res;
    clock_getres(CLOCK_MONOTONIC, &res);
    printf("realtime %lld\n", ns_of(CLOCK_REALTIME));
    printf("monotonic %lld\n", ns_of(CLOCK_MONOTONIC));
    printf("monotonic %lld\n", ns_of(CLOCK_MONOTONIC));
    __wasi_timestamp_t cpu = 0;  /* wasi-libc's clock_gettime has no CPU clocks */
    if (__wasi_clock_time_get(__WASI_CLOCKID_PROCESS_CPUTIME_ID, 1, &cpu) != 0) return 2;
    printf("process %llu\n", (unsigned long long)cpu);
    printf("resolution %lld\n", (long long)res.tv_sec * 1000000000LL + res.tv_nsec);
    printf("time %lld\n", (long long)time(NULL));
    unsigned char bytes[16];
    if (getentropy(bytes, sizeof bytes) != 0) {
        perror("getentropy");
        return 2;
    }
    printf("random ");
    for (size_t i = 0; i < sizeof bytes; i++) printf("%02x", bytes[i]);
    printf("\nrand %d\n", rand());  /* seeded by nothing: the same everywhere */
    DIR *dir = opendir("/dir");
    if (dir != NULL) {
        char names[64][64];
        int n = 0;
        struct dirent *e;
        while ((e = readdir(dir)) != NULL && n < 64) {
            snprintf(names[n++], sizeof names[0], "%s", e->d_name);
        }
        closedir(dir);
        printf("listing");  /* readdir's own order: that is what is checked */
        for (int i = 0; i < n; i++) printf(" %s", names[i]);
        printf("\n");
    }
    return 0;
}
