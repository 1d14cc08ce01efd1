/* An echo server on a preopened listening socket: argv[1] is its fd
 * (default 3), argv[2] how many connections to serve (default 1). For each
 * connection: prints "accepted", echoes everything back (recv/send) until
 * the client shuts down its side, then shuts down its own and closes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int listener = argc > 1 ? atoi(argv[1]) : 3;
    int count = argc > 2 ? atoi(argv[2]) : 1;
    for (int i = 0; i < count; i++) {
        int conn = accept(listener, NULL, NULL);
        if (conn < 0) { perror("accept"); return 1; }
        printf("accepted %d\n", conn);
        fflush(stdout);
        char buf[4096];
        long total = 0;
        for (;;) {
            ssize_t n = recv(conn, buf, sizeof buf, 0);
            if (n < 0) { perror("recv"); return 2; }
            if (n == 0) break;
            for (ssize_t done = 0; done < n;) {
                ssize_t m = send(conn, buf + done, n - done, 0);
                if (m < 0) { perror("send"); return 3; }
                done += m;
            }
            total += n;
        }
        if (shutdown(conn, SHUT_WR) < 0) { perror("shutdown"); return 4; }
        close(conn);
        printf("echoed %ld\n", total);
        fflush(stdout);
    }
    /* sock_shutdown on a non-socket (stdout) is NOTSOCK. */
    if (shutdown(1, SHUT_RDWR) == 0 || errno != ENOTSOCK) { puts("shutdown(1) should fail"); return 5; }
    puts("done");
    return 0;
}
