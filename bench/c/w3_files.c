/* W3: in DIR (created here), create N small files, stat each, list the
 * directory, unlink all, remove DIR. Every step is counted and reported. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FAIL(what, path) do { fprintf(stderr, "%s %s: %s\n", what, path, strerror(errno)); return 1; } while (0)

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: w3_files DIR [N]\n"); return 2; }
    const char *dir = argv[1];
    long n = argc > 2 ? atol(argv[2]) : 5000;
    char path[4096], body[64];
    long created = 0, statted = 0, listed = 0, unlinked = 0;
    if (mkdir(dir, 0755) != 0) FAIL("mkdir", dir);
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/f%05ld.txt", dir, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0) FAIL("open", path);
        int len = snprintf(body, sizeof body, "file %ld\n", i);
        if (write(fd, body, (size_t)len) != len) FAIL("write", path);
        if (close(fd) != 0) FAIL("close", path);
        created++;
    }
    for (long i = 0; i < n; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/f%05ld.txt", dir, i);
        if (stat(path, &st) != 0) FAIL("stat", path);
        int len = snprintf(body, sizeof body, "file %ld\n", i);
        if (S_ISREG(st.st_mode) && st.st_size == len) statted++;
    }
    DIR *d = opendir(dir);
    if (!d) FAIL("opendir", dir);
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] == 'f') listed++;
    if (errno) FAIL("readdir", dir);
    closedir(d);
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/f%05ld.txt", dir, i);
        if (unlink(path) != 0) FAIL("unlink", path);
        unlinked++;
    }
    if (rmdir(dir) != 0) FAIL("rmdir", dir);
    fprintf(stderr, "w3 created=%ld statted=%ld listed=%ld unlinked=%ld\n",
            created, statted, listed, unlinked);
    return (created == n && statted == n && listed == n && unlinked == n) ? 0 : 1;
}
