/* Reads stdin with a timeout through poll(): argv[1] is the timeout in ms.
 * Prints "timeout" each time poll() times out, "got <bytes>" for each read,
 * "eof" at the end. Gives up after 50 timeouts. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int timeout = argc > 1 ? atoi(argv[1]) : 100;
    char buf[256];
    for (int timeouts = 0; timeouts < 50;) {
        struct pollfd p = {.fd = 0, .events = POLLIN};
        int n = poll(&p, 1, timeout);
        if (n < 0) { perror("poll"); return 2; }
        if (n == 0) { puts("timeout"); fflush(stdout); timeouts++; continue; }
        if (!(p.revents & (POLLIN | POLLHUP))) { printf("revents %d\n", p.revents); return 3; }
        ssize_t got = read(0, buf, sizeof buf - 1);
        if (got < 0) { perror("read"); return 4; }
        if (got == 0) { puts("eof"); return 0; }
        buf[got] = 0;
        printf("got %s\n", buf);
        fflush(stdout);
    }
    return 1;
}
