/* Recursion as deep as argv[1] says, for the wasm stack's limit
 * (compile(..., max_wasm_stack=)). Each level keeps its values in wasm
 * locals, which live on the wasm stack (not in the shadow stack in linear
 * memory), and uses the deeper level's result after the call returns, so
 * the compiler cannot turn it into a loop. Prints the depth reached. */
#include <stdio.h>
#include <stdlib.h>

volatile unsigned salt = 1;

__attribute__((noinline)) static unsigned long long down(unsigned n) {
    unsigned long long a = (unsigned long long)salt * n, b = a ^ 7, c = b * 31 + a;
    if (n == 0)
        return a;
    unsigned long long r = down(n - 1);
    return r * 3 + (a ^ b ^ c);
}

int main(int argc, char **argv) {
    unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1000;
    unsigned long long r = down(n);
    printf("reached %u (%llu)\n", n, r & 0xff);
    return 0;
}
