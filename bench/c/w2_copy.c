/* W2: copy SRC to DST with 64 KiB read/write calls. The harness checks the
 * copy's SHA-256 afterwards. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char buf[64 * 1024];

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: w2_copy SRC DST\n"); return 2; }
    int in = open(argv[1], O_RDONLY);
    if (in < 0) { fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno)); return 1; }
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) { fprintf(stderr, "open %s: %s\n", argv[2], strerror(errno)); return 1; }
    unsigned long long total = 0;
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0) { fprintf(stderr, "read: %s\n", strerror(errno)); return 1; }
        if (r == 0) break;
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(out, buf + off, (size_t)(r - off));
            if (w <= 0) { fprintf(stderr, "write: %s\n", strerror(errno)); return 1; }
            off += w;
        }
        total += (unsigned long long)r;
    }
    if (close(in) || close(out)) { fprintf(stderr, "close: %s\n", strerror(errno)); return 1; }
    fprintf(stderr, "w2 bytes=%llu\n", total);
    return 0;
}
