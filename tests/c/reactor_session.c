/* A reactor (built with -mexec-model=reactor) for bounded calls from the
 * host (Instance.call with timeout, fuel, cancel, max_output): one export per
 * place a call can be stopped, and state that carries over between calls.
 *   turn(n)     counts its calls, returns the count * 1000 + n (state kept);
 *   work(n)     n rounds of arithmetic, then returns (a fuel budget's guest);
 *   say(n)      writes n bytes "x" to stdout and returns n;
 *   spin()      computes forever;
 *   nap()       sleeps 100 s in poll_oneoff;
 *   read_in()   reads stdin until it ends (a pipe nobody writes: forever);
 *   accept_on(fd) waits in sock_accept on fd (a listener nobody connects to);
 *   flood()     writes 1000-byte lines to stdout forever. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int turns;

__attribute__((export_name("turn")))
int turn(int n) { return ++turns * 1000 + n; }

__attribute__((export_name("work")))
int work(int n) {
    volatile unsigned acc = 1;
    for (int i = 0; i < n; i++)
        acc = acc * 31 + (unsigned)i;
    return (int)(acc & 0x7fffffff);
}

__attribute__((export_name("say")))
int say(int n) {
    char buf[256];
    memset(buf, 'x', sizeof buf);
    for (int left = n; left > 0; left -= (int)sizeof buf)
        write(1, buf, left < (int)sizeof buf ? (size_t)left : sizeof buf);
    return n;
}

__attribute__((export_name("spin")))
void spin(void) {
    volatile unsigned long n = 0;
    for (;;)
        n++;
}

__attribute__((export_name("nap")))
int nap(void) { return (int)sleep(100); }

__attribute__((export_name("read_in")))
int read_in(void) {
    char buf[256];
    int total = 0, n;
    while ((n = (int)read(0, buf, sizeof buf)) > 0)
        total += n;
    return total;
}

__attribute__((export_name("accept_on")))
int accept_on(int fd) { return accept(fd, NULL, NULL); }

__attribute__((export_name("flood")))
void flood(void) {
    char line[1000];
    memset(line, 'x', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    for (;;)
        write(1, line, sizeof line);
}
