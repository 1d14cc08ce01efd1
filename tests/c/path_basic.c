/*
 * Ordinary file operations inside the preopen /sandbox, for a byte-for-byte
 * comparison with node:wasi: open/creat/O_EXCL/O_TRUNC/O_DIRECTORY, stat and
 * lstat, mkdir/rmdir/unlink/rename/link/symlink/readlink, and opendir on a
 * subdirectory then openat relative to it. Only facts both hosts agree on
 * are printed (no inode numbers, no times).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *ename(int e) {
    switch (e) {
    case 0: return "ok";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ELOOP: return "ELOOP";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case EACCES: return "EACCES";
    case ENOTCAPABLE: return "ENOTCAPABLE";
    default: return "other";
    }
}

static void show(const char *what, int rc) {
    printf("%s: %s\n", what, rc < 0 ? ename(errno) : "ok");
}

static const char *kind(mode_t m) {
    return S_ISREG(m) ? "file" : S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "symlink" : "other";
}

int main(void) {
    struct stat st;
    char buf[64];

    show("mkdir d", mkdir("/sandbox/d", 0755));
    show("mkdir d again", mkdir("/sandbox/d", 0755));

    int fd = open("/sandbox/d/f", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    show("creat d/f", fd);
    printf("write: %zd\n", write(fd, "hello world", 11));
    close(fd);

    show("O_EXCL existing", open("/sandbox/d/f", O_WRONLY | O_CREAT | O_EXCL, 0644));
    fd = open("/sandbox/d/new", O_WRONLY | O_CREAT | O_EXCL, 0644);
    show("O_EXCL new", fd);
    close(fd);
    show("open missing", open("/sandbox/d/missing", O_RDONLY));
    show("O_DIRECTORY on file", open("/sandbox/d/f", O_RDONLY | O_DIRECTORY));
    fd = open("/sandbox/d", O_RDONLY | O_DIRECTORY);
    show("O_DIRECTORY on dir", fd);
    close(fd);

    show("stat d/f", stat("/sandbox/d/f", &st));
    printf("d/f: %s size %lld nlink %d\n", kind(st.st_mode), (long long)st.st_size, (int)st.st_nlink);
    show("stat d", stat("/sandbox/d", &st));
    printf("d: %s\n", kind(st.st_mode));

    fd = open("/sandbox/d/f", O_RDONLY);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n < 0 ? 0 : n] = 0;
    printf("read d/f: \"%s\"\n", buf);
    close(fd);

    fd = open("/sandbox/d/new", O_WRONLY | O_APPEND);
    write(fd, "abc", 3);
    close(fd);
    fd = open("/sandbox/d/new", O_WRONLY | O_APPEND);
    write(fd, "def", 3);
    close(fd);
    stat("/sandbox/d/new", &st);
    printf("append size: %lld\n", (long long)st.st_size);
    fd = open("/sandbox/d/new", O_WRONLY | O_TRUNC);
    show("O_TRUNC", fd);
    close(fd);
    stat("/sandbox/d/new", &st);
    printf("truncated size: %lld\n", (long long)st.st_size);

    show("rename f -> g", rename("/sandbox/d/f", "/sandbox/d/g"));
    show("stat old name", stat("/sandbox/d/f", &st));
    show("link g -> h", link("/sandbox/d/g", "/sandbox/d/h"));
    stat("/sandbox/d/g", &st);
    printf("g nlink: %d\n", (int)st.st_nlink);

    show("symlink s -> g", symlink("g", "/sandbox/d/s"));
    n = readlink("/sandbox/d/s", buf, sizeof buf);
    printf("readlink s: %zd \"%.*s\"\n", n, (int)(n < 0 ? 0 : n), buf);
    lstat("/sandbox/d/s", &st);
    printf("lstat s: %s\n", kind(st.st_mode));
    stat("/sandbox/d/s", &st);
    printf("stat s: %s size %lld\n", kind(st.st_mode), (long long)st.st_size);

    show("mkdir d/sub", mkdir("/sandbox/d/sub", 0755));
    fd = open("/sandbox/d/sub/inner", O_WRONLY | O_CREAT, 0644);
    write(fd, "inner!", 6);
    close(fd);
    DIR *dir = opendir("/sandbox/d/sub");
    printf("opendir sub: %s\n", dir ? "ok" : ename(errno));
    int dfd = dirfd(dir);
    fd = openat(dfd, "inner", O_RDONLY);
    show("openat(sub, inner)", fd);
    n = read(fd, buf, sizeof buf - 1);
    buf[n < 0 ? 0 : n] = 0;
    printf("read inner: \"%s\"\n", buf);
    close(fd);
    show("fstatat(sub, inner)", fstatat(dfd, "inner", &st, 0));
    printf("inner size: %lld\n", (long long)st.st_size);
    show("mkdirat(sub, deeper)", mkdirat(dfd, "deeper", 0755));
    show("unlinkat(sub, deeper, AT_REMOVEDIR)", unlinkat(dfd, "deeper", AT_REMOVEDIR));
    closedir(dir);

    show("rmdir non-empty", rmdir("/sandbox/d/sub"));
    show("unlink inner", unlink("/sandbox/d/sub/inner"));
    show("rmdir sub", rmdir("/sandbox/d/sub"));
    show("rmdir missing", rmdir("/sandbox/d/sub"));
    show("unlink s", unlink("/sandbox/d/s"));
    show("unlink h", unlink("/sandbox/d/h"));
    show("unlink g", unlink("/sandbox/d/g"));
    show("unlink new", unlink("/sandbox/d/new"));
    show("unlink missing", unlink("/sandbox/d/g"));
    show("rmdir d", rmdir("/sandbox/d"));
    show("stat d after", stat("/sandbox/d", &st));
    return 0;
}
