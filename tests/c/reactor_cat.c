/* A reactor (built with -mexec-model=reactor): no main, exports called from
 * the host after _initialize. cat_file() copies the preopened /data/in.txt
 * to stdout and returns how many bytes it copied (-1 on error); calls() says
 * how many times cat_file ran, proving state survives between calls. */
#include <stdio.h>

static int ncalls;

__attribute__((export_name("cat_file")))
int cat_file(void) {
    ncalls++;
    FILE *f = fopen("/data/in.txt", "r");
    if (!f) { perror("fopen /data/in.txt"); return -1; }
    char buf[512];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        fwrite(buf, 1, n, stdout);
        total += n;
    }
    fclose(f);
    fflush(stdout);
    return (int)total;
}

__attribute__((export_name("calls")))
int calls(void) { return ncalls; }
