/* A guest that asks its host for something: it sends a JSON request (a
 * pointer and a length into its memory) to the import host.call, which
 * writes its JSON reply into the buffer the guest gives and returns the
 * reply's length (negative: the buffer is too small, by that much).
 * argv[1]: "ok" (one request, the reply printed), "small" (a buffer too
 * small, then a larger one), "bad" (a request pointer out of bounds). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((import_module("host"), import_name("call")))
int host_call(const char *request, int request_len, char *reply, int reply_cap);

static void ask(const char *request, int cap) {
    char *reply = malloc(cap);
    int n = host_call(request, (int)strlen(request), reply, cap);
    if (n < 0) {
        printf("needs %d bytes\n", -n);
        ask(request, -n);
    } else {
        printf("reply %.*s\n", n, reply);
    }
    free(reply);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "ok";
    const char *request = "{\"op\": \"add\", \"args\": [2, 3, 37]}";
    if (strcmp(mode, "ok") == 0) {
        ask(request, 256);
    } else if (strcmp(mode, "small") == 0) {
        ask(request, 4);
    } else if (strcmp(mode, "bad") == 0) {
        host_call((const char *)0xFFFFFF00, 1000, NULL, 0);
        printf("not reached\n");
    }
    return 0;
}
