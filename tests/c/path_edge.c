/*
 * Path edge cases for pywasi (expected output pinned in tests/test_path.py):
 * trailing slashes in open/stat/mkdir/rmdir/unlink/rename/symlink/link,
 * ELOOP on symlink loops and O_NOFOLLOW, utimensat with nanoseconds and
 * UTIME_OMIT, lstat vs stat vs fstatat(AT_SYMLINK_NOFOLLOW), linkat with and
 * without AT_SYMLINK_FOLLOW, readlink into a short buffer, a directory opened
 * for writing, and ".." relative to an opened subdirectory (its own root).
 *
 * NOTE: the hard links go through the raw __wasi_path_link (fd 3 is the
 * preopen): this wasi-libc's linkat(AT_FDCWD, ...) hands the host the *new*
 * path as both paths (the two resolve into one shared buffer).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wasi/api.h>

static const char *ename(int e) {
    switch (e) {
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ELOOP: return "ELOOP";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case EBUSY: return "EBUSY";
    case ENOTCAPABLE: return "ENOTCAPABLE";
    default: return "other";
    }
}

static void show(const char *what, int rc) {
    if (rc < 0)
        printf("%s: %s\n", what, ename(errno));
    else
        printf("%s: ok\n", what);
}

static void show_wasi(const char *what, __wasi_errno_t err) {
    printf("%s: errno %d\n", what, (int)err);
}

static void show_fd(const char *what, int fd) {
    show(what, fd);
    if (fd >= 0)
        close(fd);
}

static const char *kind(mode_t m) {
    return S_ISREG(m) ? "file" : S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "symlink" : "other";
}

static void touch(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    write(fd, text, strlen(text));
    close(fd);
}

int main(void) {
    struct stat st;
    char buf[64];

    if (chdir("/sandbox") != 0) {
        printf("chdir failed\n");
        return 1;
    }
    touch("f", "file");
    mkdir("dir", 0755);
    symlink("dir", "ldir");
    symlink("f", "lf");

    puts("-- trailing slashes");
    show_fd("open f/", open("f/", O_RDONLY));
    show_fd("open dir/", open("dir/", O_RDONLY));
    show_fd("open ldir/", open("ldir/", O_RDONLY));
    show_fd("open lf/", open("lf/", O_RDONLY));
    show_fd("creat new/", open("new/", O_WRONLY | O_CREAT, 0644));
    show("stat f/", stat("f/", &st));
    show("stat dir/", stat("dir/", &st));
    show("lstat ldir/", lstat("ldir/", &st));
    printf("lstat ldir/ is: %s\n", kind(st.st_mode));
    show("mkdir nd/", mkdir("nd/", 0755));
    show("rmdir nd/", rmdir("nd/"));
    show("rmdir f/", rmdir("f/"));
    show("rmdir ldir/", rmdir("ldir/"));
    show("unlink f/", unlink("f/"));
    show("unlink dir/", unlink("dir/"));
    show("unlink dir", unlink("dir"));
    show("unlink lf/", unlink("lf/"));
    show("rename f/ g", rename("f/", "g"));
    show("rename f g/", rename("f", "g/"));
    show("rename dir/ dir2/", rename("dir/", "dir2/"));
    show("rename dir2 dir", rename("dir2", "dir"));
    show("symlink t newlink/", symlink("t", "newlink/"));
    show("symlink t f/", symlink("t", "f/"));
    show("link f newlink/", link("f", "newlink/"));
    show("link f/ x", link("f/", "x"));
    show("link dir x", link("dir", "x"));

    puts("-- dots");
    show("mkdir .", mkdir(".", 0755));
    show("mkdir dir/..", mkdir("dir/..", 0755));
    show("rmdir .", rmdir("."));
    show("rename . x", rename(".", "x"));
    show("open ..", open("..", O_RDONLY));
    show("stat dir/..", stat("dir/..", &st));

    puts("-- symlink loops");
    symlink("loop2", "loop1");
    symlink("loop1", "loop2");
    symlink("self", "self");
    show_fd("open loop1", open("loop1", O_RDONLY));
    show_fd("open self", open("self", O_RDONLY));
    show("stat loop1", stat("loop1", &st));
    show("lstat loop1", lstat("loop1", &st));
    show_fd("open loop1/x", open("loop1/x", O_RDONLY));
    show_fd("O_NOFOLLOW lf", open("lf", O_RDONLY | O_NOFOLLOW));
    show_fd("O_NOFOLLOW|O_DIRECTORY ldir", open("ldir", O_RDONLY | O_NOFOLLOW | O_DIRECTORY));
    show_fd("O_NOFOLLOW f", open("f", O_RDONLY | O_NOFOLLOW));

    puts("-- stat kinds");
    lstat("lf", &st);
    printf("lstat lf: %s size %lld\n", kind(st.st_mode), (long long)st.st_size);
    stat("lf", &st);
    printf("stat lf: %s size %lld\n", kind(st.st_mode), (long long)st.st_size);
    fstatat(AT_FDCWD, "lf", &st, AT_SYMLINK_NOFOLLOW);
    printf("fstatat lf nofollow: %s\n", kind(st.st_mode));
    fstatat(AT_FDCWD, "lf", &st, 0);
    printf("fstatat lf follow: %s\n", kind(st.st_mode));

    puts("-- times");
    struct timespec ts[2] = {{1000000000, 123456789}, {1500000000, 987654321}};
    show("utimensat f", utimensat(AT_FDCWD, "f", ts, 0));
    stat("f", &st);
    printf("atim %lld.%09ld mtim %lld.%09ld\n", (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
           (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    struct timespec omit[2] = {{0, UTIME_OMIT}, {1600000000, 5}};
    show("utimensat omit atime", utimensat(AT_FDCWD, "f", omit, 0));
    stat("f", &st);
    printf("atim %lld.%09ld mtim %lld.%09ld\n", (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
           (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    struct timespec ts2[2] = {{1100000000, 1}, {1200000000, 2}};
    show("utimensat lf follow", utimensat(AT_FDCWD, "lf", ts2, 0));
    stat("f", &st);
    printf("f mtim %lld.%09ld\n", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    struct timespec ts3[2] = {{1300000000, 3}, {1400000000, 4}};
    show("utimensat lf nofollow", utimensat(AT_FDCWD, "lf", ts3, AT_SYMLINK_NOFOLLOW));
    lstat("lf", &st);
    printf("lf mtim %lld.%09ld\n", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    stat("f", &st);
    printf("f mtim %lld.%09ld\n", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    show("utimensat missing", utimensat(AT_FDCWD, "missing", ts, 0));
    show("utimensat f/", utimensat(AT_FDCWD, "f/", ts, 0));

    puts("-- links");
    show_wasi("path_link lf hl_follow FOLLOW",
              __wasi_path_link(3, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, "lf", 3, "hl_follow"));
    lstat("hl_follow", &st);
    printf("hl_follow: %s nlink %d\n", kind(st.st_mode), (int)st.st_nlink);
    show_wasi("path_link lf hl_nofollow 0", __wasi_path_link(3, 0, "lf", 3, "hl_nofollow"));
    lstat("hl_nofollow", &st);
    printf("hl_nofollow: %s\n", kind(st.st_mode));
    show("link f lf (exists)", link("f", "lf"));
    show("symlink x f (exists)", symlink("x", "f"));

    puts("-- readlink");
    ssize_t n = readlink("lf", buf, 1);
    printf("readlink lf short: %zd '%c'\n", n, buf[0]);
    symlink("a/long/target/name", "long");
    n = readlink("long", buf, 6);
    printf("readlink long into 6: %zd \"%.*s\"\n", n, (int)(n < 0 ? 0 : n), buf);
    n = readlink("long", buf, sizeof buf);
    printf("readlink long: %zd \"%.*s\"\n", n, (int)(n < 0 ? 0 : n), buf);
    show("readlink f", (int)readlink("f", buf, sizeof buf));
    show("readlink missing", (int)readlink("missing", buf, sizeof buf));
    show("readlink ldir/", (int)readlink("ldir/", buf, sizeof buf));

    puts("-- directories");
    show_fd("open dir O_WRONLY", open("dir", O_WRONLY));
    show_fd("open dir O_RDWR", open("dir", O_RDWR));
    show("rmdir f", rmdir("f"));
    mkdir("dir/sub", 0755);
    touch("dir/sub/deep", "deep");
    touch("dir/near", "near");
    show("rmdir dir (not empty)", rmdir("dir"));
    DIR *d = opendir("dir/sub");
    int dfd = dirfd(d);
    int fd = openat(dfd, "deep", O_RDONLY);
    n = read(fd, buf, sizeof buf);
    printf("openat(sub, deep): %.*s\n", (int)(n < 0 ? 0 : n), buf);
    close(fd);
    show_fd("openat(sub, ../near)", openat(dfd, "../near", O_RDONLY));
    show_fd("openat(sub, .)", openat(dfd, ".", O_RDONLY));
    show("fstatat(sub, ..)", fstatat(dfd, "..", &st, 0));
    show("mkdirat(sub, ../escape)", mkdirat(dfd, "../escape", 0755));
    closedir(d);
    show("stat dir/escape", stat("dir/escape", &st));
    return 0;
}
