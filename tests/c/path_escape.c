/*
 * The escape suite, from inside a real guest: every way out of the preopen
 * /sandbox (fd 3) we know of, through the raw preview1 calls (so the host
 * resolver is what answers, not wasi-libc's own path handling) and through
 * libc. Prints "<what>: <errno number>" per attempt and, for any read that
 * succeeds, what it read. argv[1] is the host path of a file outside (the
 * target of a guest-made absolute symlink, refused); argv[2] is a number of
 * seconds to spend in the rename race (the host renames sandbox/r/b out and
 * back meanwhile).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

#define PRE 3
static const __wasi_rights_t RD = __WASI_RIGHTS_FD_READ;
static const __wasi_rights_t WR = __WASI_RIGHTS_FD_WRITE;

static void report(const char *what, __wasi_errno_t err) { printf("%s: %d\n", what, (int)err); }

static void try_read(const char *what, const char *path, __wasi_lookupflags_t follow) {
    __wasi_fd_t fd;
    __wasi_errno_t err = __wasi_path_open(PRE, follow, path, 0, RD, 0, 0, &fd);
    report(what, err);
    if (err == 0) {
        char buf[64];
        __wasi_iovec_t iov = {(uint8_t *)buf, sizeof buf - 1};
        __wasi_size_t n = 0;
        __wasi_fd_read(fd, &iov, 1, &n);
        buf[n] = 0;
        printf("  read: %s\n", buf);
        __wasi_fd_close(fd);
    }
}

static void try_write(const char *what, const char *path) {
    __wasi_fd_t fd;
    __wasi_errno_t err = __wasi_path_open(PRE, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, path,
                                          __WASI_OFLAGS_CREAT | __WASI_OFLAGS_TRUNC, WR, 0, 0, &fd);
    report(what, err);
    if (err == 0) {
        __wasi_ciovec_t iov = {(const uint8_t *)"PWNED", 5};
        __wasi_size_t n;
        __wasi_fd_write(fd, &iov, 1, &n);
        __wasi_fd_close(fd);
    }
}

static const char *READS[] = {
    "../outside/secret", "/etc/passwd", "a/../../outside/secret", "../pre2/secret",
    "./../outside/secret", "a/b/../../../outside/secret", "..", "/",
    "abs_out", "rel_out", "mid_abs/secret", "mid_rel/secret", "mid_rel/sub/secret",
    "proc_root/etc/passwd", "proc_fd/secret", "proc_self_fd", "climb/outside/secret",
    "g_rel", "g_mid/secret", "g_chain", NULL,
};

int main(int argc, char **argv) {
    const char *host_secret = argc > 1 ? argv[1] : "/nonexistent";
    double race_seconds = argc > 2 ? atof(argv[2]) : 0;

    /* Guest-made symlinks: an absolute target is refused (it can never
     * resolve inside); relative ones are allowed (they are text). */
    report("symlink g_abs", __wasi_path_symlink(host_secret, PRE, "g_abs"));
    report("symlink g_rel", __wasi_path_symlink("../outside/secret", PRE, "g_rel"));
    report("symlink g_mid", __wasi_path_symlink("../outside", PRE, "g_mid"));
    report("symlink g_chain", __wasi_path_symlink("g_rel", PRE, "g_chain"));
    report("symlink g_new", __wasi_path_symlink("../outside/created", PRE, "g_new"));

    for (const char **p = READS; *p; p++) {
        char what[96];
        snprintf(what, sizeof what, "read %s", *p);
        try_read(what, *p, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW);
    }
    try_read("read abs_out nofollow", "abs_out", 0);

    try_write("write ../outside/secret", "../outside/secret");
    try_write("write rel_out", "rel_out");
    try_write("write abs_out", "abs_out");
    try_write("write g_rel", "g_rel");
    try_write("write g_new (dangling, out)", "g_new");
    try_write("write mid_rel/new", "mid_rel/new");
    try_write("write ../pre2/new", "../pre2/new");

    __wasi_filestat_t st;
    report("stat ../outside/secret", __wasi_path_filestat_get(PRE, 0, "../outside/secret", &st));
    report("stat abs_out follow", __wasi_path_filestat_get(PRE, 1, "abs_out", &st));
    report("stat mid_rel/secret", __wasi_path_filestat_get(PRE, 0, "mid_rel/secret", &st));
    report("utimes rel_out follow", __wasi_path_filestat_set_times(PRE, 1, "rel_out", 1, 1,
           __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM));
    report("utimes mid_rel/secret", __wasi_path_filestat_set_times(PRE, 0, "mid_rel/secret", 1, 1,
           __WASI_FSTFLAGS_ATIM | __WASI_FSTFLAGS_MTIM));
    report("mkdir ../outside/newdir", __wasi_path_create_directory(PRE, "../outside/newdir"));
    report("mkdir mid_rel/newdir", __wasi_path_create_directory(PRE, "mid_rel/newdir"));
    report("unlink ../outside/secret", __wasi_path_unlink_file(PRE, "../outside/secret"));
    report("unlink mid_rel/secret", __wasi_path_unlink_file(PRE, "mid_rel/secret"));
    report("rmdir mid_rel/sub", __wasi_path_remove_directory(PRE, "mid_rel/sub"));
    report("rename f -> ../outside/moved", __wasi_path_rename(PRE, "f", PRE, "../outside/moved"));
    report("rename mid_rel/secret -> stolen", __wasi_path_rename(PRE, "mid_rel/secret", PRE, "stolen"));
    report("rename f -> mid_rel/moved", __wasi_path_rename(PRE, "f", PRE, "mid_rel/moved"));
    report("link ../outside/secret", __wasi_path_link(PRE, 0, "../outside/secret", PRE, "hl1"));
    report("link mid_rel/secret", __wasi_path_link(PRE, 0, "mid_rel/secret", PRE, "hl2"));
    report("link abs_out follow", __wasi_path_link(PRE, 1, "abs_out", PRE, "hl3"));
    report("link rel_out follow", __wasi_path_link(PRE, 1, "rel_out", PRE, "hl4"));
    report("link f -> ../outside/hl", __wasi_path_link(PRE, 0, "f", PRE, "../outside/hl"));
    report("symlink into mid_rel", __wasi_path_symlink("x", PRE, "mid_rel/planted"));
    char buf[8];
    __wasi_size_t used;
    report("readlink mid_rel/link", __wasi_path_readlink(PRE, "mid_rel/link", (uint8_t *)buf, 8, &used));

    /* libc's own route (its path handling, then ours). */
    printf("libc fopen ../outside/secret: %s\n", fopen("/sandbox/../outside/secret", "r") ? "OPENED" : "failed");
    printf("libc fopen /etc/passwd: %s\n", fopen("/etc/passwd", "r") ? "OPENED" : "failed");
    printf("libc fopen rel_out: %s\n", fopen("/sandbox/rel_out", "r") ? "OPENED" : "failed");
    printf("libc link out: %s\n", link("/sandbox/mid_rel/secret", "/sandbox/hl5") == 0 ? "LINKED" : "failed");

    /* The race: walk r/b/c/../../x while the host moves r/b out and back.
     * Inside, r/x says "inside"; the host's away/x says "SECRET". */
    long attempts = 0, inside = 0, leaked = 0, failed = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        __wasi_fd_t fd;
        __wasi_errno_t err = __wasi_path_open(PRE, 1, "r/b/c/../../x", 0, RD, 0, 0, &fd);
        attempts++;
        if (err == 0) {
            char data[16] = {0};
            __wasi_iovec_t iov = {(uint8_t *)data, sizeof data - 1};
            __wasi_size_t n;
            __wasi_fd_read(fd, &iov, 1, &n);
            __wasi_fd_close(fd);
            if (strncmp(data, "inside", 6) == 0)
                inside++;
            else
                leaked++;
        } else {
            failed++;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9 < race_seconds);
    printf("race: attempts>0 %s, inside>0 %s, leaked %ld\n", attempts > 0 ? "yes" : "no",
           inside > 0 ? "yes" : "no", leaked);
    (void)failed;
    return 0;
}
