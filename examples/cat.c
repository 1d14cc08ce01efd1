/* cat: copy each file named on the command line to stdout. The program of
 * the README's and docs/trace.md's trace example; build it with zig's C
 * compiler from PyPI (pip install ziglang):
 *   python -m ziglang cc --target=wasm32-wasi -O2 -o cat.wasm examples/cat.c */
#include <stdio.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            fwrite(buf, 1, n, stdout);
        fclose(f);
    }
    return 0;
}
