/*
 * Exercises the "core environment" syscalls a libc start-up and a simple
 * program touch: args_*, environ_*, clock_time_get / clock_res_get,
 * random_get, fd_write to stdout and stderr, proc_exit.
 *
 * Output is deterministic for given args and env (clock and random values are
 * never printed, only facts about them), so two hosts can be compared byte
 * for byte.  Exit code: atoi(argv[1]) if given, else 0.
 *
 * NOTE: wasi-libc does not define CLOCK_PROCESS_CPUTIME_ID (its clockid_t is
 * a pointer type and only REALTIME and MONOTONIC exist), so the CPU-time
 * clock is read through the raw preview1 call from <wasi/api.h>.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

extern char **environ;

static const char *yes(int cond) { return cond ? "yes" : "no"; }

static int64_t ts_ns(const struct timespec *ts) {
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static void show_args(int argc, char **argv) {
    printf("argc: %d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]: \"%s\" (%zu bytes)\n", i, argv[i], strlen(argv[i]));
    printf("argv[argc] is NULL: %s\n", yes(argv[argc] == NULL));
}

static void show_env(void) {
    int n = 0;
    for (char **e = environ; *e != NULL; e++, n++)
        printf("environ[%d]: \"%s\"\n", n, *e);
    printf("environ count: %d\n", n);
    const char *names[] = {"PYWASI_TEST", "HOME", "EMPTY"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v)
            printf("getenv(%s): \"%s\"\n", names[i], v);
        else
            printf("getenv(%s): (unset)\n", names[i]);
    }
}

static void show_clocks(void) {
    struct timespec rt, m0, m1, res;

    int rc = clock_gettime(CLOCK_REALTIME, &rt);
    printf("realtime ok: %s\n", yes(rc == 0));
    /* 2020-01-01T00:00:00Z */
    printf("realtime after 2020: %s\n", yes(rc == 0 && rt.tv_sec >= 1577836800));
    printf("realtime nsec in range: %s\n", yes(rt.tv_nsec >= 0 && rt.tv_nsec < 1000000000));

    rc = clock_gettime(CLOCK_MONOTONIC, &m0);
    printf("monotonic ok: %s\n", yes(rc == 0));
    /* Spin until the clock moves; a bound keeps a stuck clock from hanging. */
    long spins = 0;
    do {
        clock_gettime(CLOCK_MONOTONIC, &m1);
    } while (ts_ns(&m1) == ts_ns(&m0) && ++spins < 100000000L);
    printf("monotonic increases: %s\n", yes(ts_ns(&m1) > ts_ns(&m0)));

    rc = clock_getres(CLOCK_REALTIME, &res);
    printf("realtime res ok: %s\n", yes(rc == 0));
    printf("realtime res in (0, 1s]: %s\n", yes(ts_ns(&res) > 0 && ts_ns(&res) <= 1000000000));
    rc = clock_getres(CLOCK_MONOTONIC, &res);
    printf("monotonic res ok: %s\n", yes(rc == 0));
    printf("monotonic res in (0, 1s]: %s\n", yes(ts_ns(&res) > 0 && ts_ns(&res) <= 1000000000));

    __wasi_timestamp_t cpu = 0, cpu_res = 0;
    __wasi_errno_t err = __wasi_clock_time_get(__WASI_CLOCKID_PROCESS_CPUTIME_ID, 1, &cpu);
    printf("process cputime errno: %d\n", (int)err);
    err = __wasi_clock_res_get(__WASI_CLOCKID_PROCESS_CPUTIME_ID, &cpu_res);
    printf("process cputime res errno: %d\n", (int)err);
    printf("process cputime res nonzero: %s\n", yes(err != 0 || cpu_res > 0));
}

static void show_random(void) {
    unsigned char buf[32];
    memset(buf, 0, sizeof buf);
    int rc = getentropy(buf, sizeof buf);
    int nonzero = 0;
    for (size_t i = 0; i < sizeof buf; i++)
        nonzero |= buf[i];
    printf("getentropy(32) ok: %s\n", yes(rc == 0));
    printf("32 random bytes not all zero: %s\n", yes(nonzero != 0));

    unsigned char a[16] = {0}, b[16] = {0};
    __wasi_errno_t err = __wasi_random_get(a, sizeof a);
    err |= __wasi_random_get(b, sizeof b);
    printf("random_get twice ok: %s\n", yes(err == 0));
    printf("random_get calls differ: %s\n", yes(memcmp(a, b, sizeof a) != 0));
}

static void show_printf(void) {
    printf("int: [%d] [%5d] [%-5d] [%05d] [%+d]\n", 42, 42, 42, 42, 42);
    printf("neg: [%d] [%u]\n", -7, 3000000000u);
    printf("hex: [%x] [%X] [%#x] [%o]\n", 48879, 48879, 255, 8);
    printf("long long: [%lld] [%llu]\n", -9223372036854775807LL - 1, 18446744073709551615ULL);
    printf("size: [%zu] [%zd]\n", (size_t)123456, (ssize_t)-1);
    printf("float: [%.3f] [%8.2f] [%-8.1f] [%e] [%g] [%g]\n",
           3.14159265, 2.5, -1.25, 12345.678, 0.0001, 1e20);
    printf("char/str: [%c] [%s] [%8s] [%-8s] [%.3s]\n", 'W', "wasi", "right", "left", "truncate");
    printf("percent: [%%]\n");
    printf("utf-8: [%s]\n", "h\xc3\xa9llo \xe2\x9c\x93");
}

int main(int argc, char **argv) {
    show_args(argc, argv);
    show_env();
    show_clocks();
    show_random();
    show_printf();
    fflush(stdout);

    fprintf(stderr, "core_env: this line goes to stderr\n");

    int code = argc > 1 ? atoi(argv[1]) : 0;
    printf("exiting with: %d\n", code);
    exit(code);
}
