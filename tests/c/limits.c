/* Guests that a limit must stop, one per argv[1]:
 *   hello  prints "hello" (the run after a stopped one);
 *   spin   computes forever;
 *   bomb   mallocs 1 MiB blocks (touching each) until malloc gives NULL,
 *          then prints "bomb <MiB> NULL" and exits 3;
 *   fds    opens argv[2] again and again until open() fails, then prints
 *          "fds <opened> <errno name>";
 *   flood  writes 1000-byte lines to stdout forever;
 *   sleep  sleeps 100 s (poll_oneoff with a clock subscription);
 *   read   reads stdin until it ends (a pipe nobody writes: forever). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "hello";
    if (!strcmp(mode, "hello")) {
        puts("hello");
        return 0;
    }
    if (!strcmp(mode, "spin")) {
        volatile unsigned long n = 0;
        for (;;)
            n++;
    }
    if (!strcmp(mode, "bomb")) {
        /* Each block links to the one before: the compiler cannot drop the
         * mallocs as unused (it would, and assume they never fail). */
        static void *volatile last;
        int mib = 0;
        for (;;) {
            void **p = malloc(1 << 20);
            if (p == NULL) {
                printf("bomb %d NULL\n", mib);
                return 3;
            }
            memset(p, 1, 1 << 20);
            *p = last;
            last = p;
            mib++;
        }
    }
    if (!strcmp(mode, "fds")) {
        int opened = 0;
        for (;;) {
            if (open(argc > 2 ? argv[2] : ".", O_RDONLY) < 0) {
                printf("fds %d %s\n", opened, errno == EMFILE ? "EMFILE"
                                              : errno == ENFILE ? "ENFILE" : strerror(errno));
                return 0;
            }
            opened++;
        }
    }
    if (!strcmp(mode, "flood")) {
        char line[1000];
        memset(line, 'x', sizeof line - 1);
        line[sizeof line - 1] = '\n';
        for (;;)
            write(1, line, sizeof line);
    }
    if (!strcmp(mode, "sleep")) {
        sleep(100);
        puts("woke");
        return 0;
    }
    if (!strcmp(mode, "read")) {
        char buf[256];
        while (read(0, buf, sizeof buf) > 0)
            ;
        puts("eof");
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
