/* start-up: the smallest complete program; the time is process start to exit. */
#include <stdio.h>

int main(void) {
    puts("hello, world");
    return 0;
}
