/* opendir/readdir over the preopened directory (argv[1]), printing one line
   per entry: "<d_type> <name>". Then checks that telldir/seekdir cookies are
   stable (resuming from a saved position gives the same continuation) and
   that rewinddir lists the same number of entries again. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXE 8192

static char *names[MAXE];

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/sandbox";
    DIR *d = opendir(path);
    if (!d) { perror("opendir"); return 1; }
    int n = 0;
    long mark = -1;
    int mark_index = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (n >= MAXE) { puts("too many"); return 1; }
        printf("%d %s\n", (int)e->d_type, e->d_name);
        if (e->d_ino == 0) { printf("zero d_ino for %s\n", e->d_name); return 1; }
        names[n++] = strdup(e->d_name);
        if (n == (MAXE < 3 ? 1 : 3) && mark < 0) { mark = telldir(d); mark_index = n; }
    }
    if (mark >= 0) {
        seekdir(d, mark);
        int i = mark_index;
        while ((e = readdir(d)) != NULL) {
            if (i >= n || strcmp(names[i], e->d_name) != 0) {
                printf("seekdir: entry %d differs\n", i); return 1;
            }
            i++;
        }
        if (i != n) { printf("seekdir: %d entries, expected %d\n", i, n); return 1; }
    }
    rewinddir(d);
    int again = 0;
    while (readdir(d) != NULL) again++;
    if (again != n) { printf("rewinddir: %d entries, expected %d\n", again, n); return 1; }
    closedir(d);
    return 0;
}
