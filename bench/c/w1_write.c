/* W1: N unbuffered 16-byte write(1, ...) calls (stdout goes to /dev/null).
 * Reports on stderr how many calls returned 16, so a host that fails or
 * short-writes cannot look fast. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    static const char line[16] = "0123456789abcde\n";
    long ok = 0;
    unsigned long long bytes = 0;
    for (long i = 0; i < n; i++) {
        ssize_t w = write(1, line, sizeof line);
        if (w == (ssize_t)sizeof line) ok++;
        if (w > 0) bytes += (unsigned long long)w;
    }
    fprintf(stderr, "w1 calls=%ld ok=%ld bytes=%llu\n", n, ok, bytes);
    return ok == n ? 0 : 1;
}
