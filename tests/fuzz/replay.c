/* SPDX-License-Identifier: MIT
 * main() for a fuzz target built without libFuzzer: every file of the
 * corpus directories (or files) named as arguments, by default
 * $top_srcdir/tests/fuzz/corpus/<target>/ where the program is
 * fuzz_<target>, goes once through LLVMFuzzerTestOneInput.  Each input is
 * copied into a buffer of its exact size, so an instrumented build sees an
 * over-read.  An empty corpus fails: a target must have seeds. */
#include "config.h"

#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static size_t inputs;

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    size_t len = (size_t)st.st_size;
    uint8_t *data = malloc(len ? len : 1);
    int failed = !data || fread(data, 1, len, f) != len;
    fclose(f);
    if (failed) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(data);
        return -1;
    }
    printf("%s\n", path);
    fflush(stdout);
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    inputs++;
    return 0;
}

static int replay(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path);
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: cannot list %s: %s\n", path, strerror(errno));
        return -1;
    }
    int status = 0;
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.') {
            char file[4096];
            snprintf(file, sizeof file, "%s/%s", path, names[i]->d_name);
            if (replay_file(file) != 0)
                status = -1;
        }
        free(names[i]);
    }
    free(names);
    return status;
}

int main(int argc, char **argv)
{
    int status = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            if (replay(argv[i]) != 0)
                status = 1;
    } else {
        const char *top = getenv("top_srcdir");
        const char *base = strrchr(argv[0], '/');
        base = base ? base + 1 : argv[0];
        if (!top || strncmp(base, "fuzz_", 5) != 0) {
            fprintf(stderr, "usage: %s [CORPUS-DIR|FILE...] (default: "
                            "$top_srcdir/tests/fuzz/corpus/<target>, under make check)\n",
                    argv[0]);
            return 2;
        }
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", top, base + 5);
        status = replay(dir) != 0;
    }
    printf("replay: %zu inputs\n", inputs);
    if (inputs == 0) {
        fprintf(stderr, "replay: no inputs: the corpus is empty\n");
        return 1;
    }
    return status;
}
