/* A reactor (-mexec-model=reactor) to pre-initialise: a constructor (run by
 * _initialize), then wizer.initialize builds a table of 20 pages on the
 * heap; the exports read it. Pre-initialised, _initialize must neither be
 * exported nor run again: ctor_runs stays 1. */
#include <stdio.h>
#include <stdlib.h>

static int ctor_runs;
static unsigned int *squares;
static int calls;
#define COUNT (20 * 65536 / 4)

__attribute__((constructor))
static void constructor(void) { ctor_runs++; }

__attribute__((export_name("wizer.initialize")))
void initialize(void) {
    squares = malloc(COUNT * sizeof *squares);
    for (unsigned int i = 0; i < COUNT; i++) squares[i] = i * i + 1;
}

__attribute__((export_name("lookup")))
unsigned int lookup(unsigned int i) { calls++; return squares ? squares[i % COUNT] : 0; }

__attribute__((export_name("report")))
int report(void) {
    printf("ctor_runs=%d calls=%d ready=%d last=%u\n", ctor_runs, calls, squares != 0,
           squares ? squares[COUNT - 1] : 0);
    fflush(stdout);
    return ctor_runs;
}
