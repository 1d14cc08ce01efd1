/* The smallest real program: one line to stdout, exit 0. */
#include <stdio.h>

int main(void) {
    puts("hello from C");
    return 0;
}
