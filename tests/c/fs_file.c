/* File descriptor calls through wasi-libc on a file in the preopened
   directory: open/write/read/lseek/pread/pwrite/fstat/ftruncate/
   posix_fallocate/fsync/fdatasync/futimens/isatty/O_APPEND.
   Prints "ok" and exits 0, or names the first failed check and exits 1. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK(cond) do { if (!(cond)) { \
    printf("FAIL line %d: %s (errno %d %s)\n", __LINE__, #cond, errno, strerror(errno)); \
    return 1; } } while (0)

int main(void) {
    char buf[64];
    struct stat st;

    int fd = open("/sandbox/data.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, "hello, world", 12) == 12);
    CHECK(lseek(fd, 0, SEEK_CUR) == 12);          /* fd_seek(CUR, 0): ftell */
    CHECK(lseek(fd, 7, SEEK_SET) == 7);
    CHECK(read(fd, buf, 5) == 5 && memcmp(buf, "world", 5) == 0);
    CHECK(lseek(fd, -5, SEEK_END) == 7);           /* negative offsets are s64 */
    CHECK(lseek(fd, -100, SEEK_CUR) == -1 && errno == EINVAL);

    /* pread/pwrite leave the offset alone */
    CHECK(lseek(fd, 3, SEEK_SET) == 3);
    CHECK(pwrite(fd, "HELLO", 5, 0) == 5);
    CHECK(pread(fd, buf, 12, 0) == 12 && memcmp(buf, "HELLO, world", 12) == 0);
    CHECK(lseek(fd, 0, SEEK_CUR) == 3);

    /* fstat, ftruncate, posix_fallocate */
    CHECK(fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 12 && st.st_nlink == 1);
    CHECK(ftruncate(fd, 5) == 0);
    CHECK(fstat(fd, &st) == 0 && st.st_size == 5);
    CHECK(posix_fallocate(fd, 0, 4096) == 0);
    CHECK(fstat(fd, &st) == 0 && st.st_size == 4096);
    CHECK(posix_fallocate(fd, 0, 0) == EINVAL);
    CHECK(fsync(fd) == 0);
    CHECK(fdatasync(fd) == 0);
    CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL) == 0);
    CHECK(posix_fadvise(fd, 0, 0, 99) == EINVAL);

    /* futimens: nanoseconds survive; UTIME_OMIT leaves mtime alone */
    struct timespec ts[2] = {{1000000000, 123456789}, {2000000000, 987654321}};
    CHECK(futimens(fd, ts) == 0);
    CHECK(fstat(fd, &st) == 0);
    CHECK(st.st_atim.tv_sec == 1000000000 && st.st_atim.tv_nsec == 123456789);
    CHECK(st.st_mtim.tv_sec == 2000000000 && st.st_mtim.tv_nsec == 987654321);
    struct timespec omit[2] = {{5, 6}, {0, UTIME_OMIT}};
    CHECK(futimens(fd, omit) == 0);
    CHECK(fstat(fd, &st) == 0 && st.st_atim.tv_sec == 5 && st.st_atim.tv_nsec == 6);
    CHECK(st.st_mtim.tv_sec == 2000000000 && st.st_mtim.tv_nsec == 987654321);

    CHECK(!isatty(fd) && errno == ENOTTY);
    CHECK(close(fd) == 0);

    /* a read-only descriptor: writes and truncation are refused */
    fd = open("/sandbox/data.bin", O_RDONLY);
    CHECK(fd >= 0);
    CHECK(write(fd, "x", 1) == -1 && errno == EBADF);   /* wasi-libc: NOTCAPABLE -> EBADF? */
    CHECK(ftruncate(fd, 0) == -1);
    CHECK(fstat(fd, &st) == 0 && st.st_size == 4096);
    CHECK(close(fd) == 0);

    /* O_APPEND: writes go to the end, fcntl reports the flag */
    fd = open("/sandbox/log.txt", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    CHECK(fd >= 0);
    CHECK((fcntl(fd, F_GETFL) & O_APPEND) != 0);
    CHECK(write(fd, "one\n", 4) == 4);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    CHECK(write(fd, "two\n", 4) == 4);
    CHECK(fstat(fd, &st) == 0 && st.st_size == 8);
    CHECK(close(fd) == 0);

    /* a directory cannot be seeked */
    fd = open("/sandbox", O_RDONLY | O_DIRECTORY);
    CHECK(fd >= 0);
    CHECK(lseek(fd, 0, SEEK_SET) == -1);
    CHECK(fstat(fd, &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(close(fd) == 0);

    puts("ok");
    return 0;
}
