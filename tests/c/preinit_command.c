/* A command to pre-initialise (pywasi.preinitialize, tests/test_preinit.py).
 * wizer.initialize fills 40 pages of heap (every fourth page left zero, so
 * the snapshot has ranges to merge and gaps to skip), changes a data-section
 * counter and reads /data/config.txt (a MemoryFS at init time). main then
 * prints what it finds: the same output whether the init ran in this
 * instance just before _start or in an earlier one that was snapshotted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 65536
#define PAGES 40

static unsigned char *heap_pages;
static int counter = 7;
static int initialized;
static char config[128] = "(not read)";
static double ratio = 0.5;

__attribute__((export_name("wizer.initialize")))
void initialize(void) {
    heap_pages = malloc(PAGES * PAGE);
    for (size_t i = 0; i < PAGES * (size_t)PAGE; i++) {
        size_t page = i / PAGE;
        heap_pages[i] = page % 4 == 0 ? 0 : (unsigned char)(1 + (i * 31 + page) % 255);
    }
    FILE *f = fopen("/data/config.txt", "r");
    if (f) {
        size_t n = fread(config, 1, sizeof config - 1, f);
        config[n] = 0;
        fclose(f);
    }
    counter += 34;
    ratio *= 3.0;
    initialized++;
}

int main(int argc, char **argv) {
    unsigned long sum = 0;
    if (heap_pages)
        for (size_t i = 0; i < PAGES * (size_t)PAGE; i++) sum = sum * 31 + heap_pages[i];
    counter++;
    /* The heap keeps working where the init left it. */
    char *more = malloc(3 * PAGE);
    memset(more, 'x', 3 * PAGE);
    const char *greeting = getenv("GREETING");
    printf("initialized=%d counter=%d ratio=%g config=%s sum=%lu more=%c argc=%d arg1=%s env=%s\n",
           initialized, counter, ratio, config, sum, more[3 * PAGE - 1], argc,
           argc > 1 ? argv[1] : "-", greeting ? greeting : "-");
    return initialized == 1 ? 0 : 3;
}
