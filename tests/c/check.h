/* Minimal test helpers for the C tests: failures are counted and reported, then main returns nonzero. */
#ifndef CHIP_TEST_CHECK_H
#define CHIP_TEST_CHECK_H

#include "chip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Descriptors for chip_fit_layer, chip_collect_stats and chip_explain (C99 compound literals). */
#define IMAGES_FILES(p, n) \
    (&(chip_images){.struct_size = sizeof(chip_images), .kind = CHIP_IMAGES_FILES, .count = (n), .paths = (p)})
#define IMAGES_ENCODED(d, l, n)                                                                       \
    (&(chip_images){.struct_size = sizeof(chip_images), .kind = CHIP_IMAGES_ENCODED, .count = (n), \
                    .data = (const uint8_t *const *)(d), .lens = (l)})
#define IMAGES_TENSOR(t, len, n, s)                                                                  \
    (&(chip_images){.struct_size = sizeof(chip_images), .kind = CHIP_IMAGES_TENSOR, .count = (n), \
                    .tensor = (t), .tensor_len = (len), .sizes = (s)})

static int check_failures = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures++;                                                        \
        }                                                                            \
    } while (0)

/* Expects `call` to return `expected`; prints the last error when it does not. */
#define CHECK_STATUS(call, expected)                                                              \
    do {                                                                                          \
        chip_status check_s_ = (call);                                                            \
        if (check_s_ != (expected)) {                                                             \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s); last error: %s\n",     \
                    __FILE__, __LINE__, #call, (int)check_s_, chip_status_str(check_s_),          \
                    (int)(expected), chip_status_str(expected), chip_last_error());               \
            check_failures++;                                                                     \
        }                                                                                         \
    } while (0)

/* A call that must succeed for the test to go on. */
#define REQUIRE_OK(call)                                                                  \
    do {                                                                                  \
        chip_status check_s_ = (call);                                                    \
        if (check_s_ != CHIP_STATUS_OK) {                                                 \
            fprintf(stderr, "%s:%d: %s failed with %d (%s): %s\n", __FILE__, __LINE__,    \
                    #call, (int)check_s_, chip_status_str(check_s_), chip_last_error());  \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

/* The last error must mention `needle`. */
#define CHECK_ERROR_MENTIONS(needle)                                                          \
    do {                                                                                      \
        if (!strstr(chip_last_error(), (needle))) {                                           \
            fprintf(stderr, "%s:%d: last error \"%s\" does not mention \"%s\"\n", __FILE__,   \
                    __LINE__, chip_last_error(), (needle));                                   \
            check_failures++;                                                                 \
        }                                                                                     \
    } while (0)

static inline int check_report(const char *name) {
    if (check_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

/* Reads a whole file; the caller frees the buffer. */
static inline unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (unsigned char *)malloc(n > 0 ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static inline void write_file(const char *path, const unsigned char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

#endif
