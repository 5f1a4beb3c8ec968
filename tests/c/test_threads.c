/*
 * One explainer, many threads: THREADS threads each run ITERATIONS chip_explain_tensor calls on a
 * shared chip_explainer (and read a shared chip_explanation), and every result must equal the serial
 * one bit for bit.
 *
 * usage: test_threads <model.onnx> <layer> <threads> <iterations> <gates> <ort threads> <image> [<image> ...]
 * (<ort threads>: intra-op threads of ONNX Runtime, 0 = its choice; 1 keeps valgrind runs short)
 *
 * Helgrind/TSan are not run on this test: ONNX Runtime's thread pool and rayon synchronise through
 * atomics and futexes those tools do not model, so they report races inside those libraries that
 * are not races; the bitwise comparison against the serial results is the check here.
 */
#include "check.h"

#include <pthread.h>
#include <stdint.h>

#define MAX_IMAGES 8

static const chip_explainer *explainer;
static const chip_explanation *shared;
static float *tensors[MAX_IMAGES];
static chip_size sizes[MAX_IMAGES];
static size_t per_image;
static size_t n_images;
static size_t iterations;

struct expected {
    size_t top1;
    float p1;
    chip_box box;
    float *map;
    size_t len;
};
static struct expected expected[MAX_IMAGES];

static int explain_one(size_t img, struct expected *out) {
    chip_explanation *e = NULL;
    chip_status s = chip_explain(explainer, IMAGES_TENSOR(tensors[img], per_image, 1, &sizes[img]), NULL, &e);
    if (s != CHIP_STATUS_OK) {
        fprintf(stderr, "explain failed: %s\n", chip_last_error());
        return 0;
    }
    s = chip_explanation_top(e, 0, 0, &out->top1, &out->p1);
    if (s == CHIP_STATUS_OK) s = chip_explanation_box(e, 0, 0, 0, &out->box);
    if (s == CHIP_STATUS_OK) s = chip_explanation_map(e, 0, 0, 0, NULL, 0, &out->len);
    if (s == CHIP_STATUS_OK) {
        out->map = (float *)malloc(out->len * sizeof(float));
        s = chip_explanation_map(e, 0, 0, 0, out->map, out->len, &out->len);
    }
    chip_explanation_free(e);
    if (s != CHIP_STATUS_OK) fprintf(stderr, "accessor failed: %s\n", chip_last_error());
    return s == CHIP_STATUS_OK;
}

static int same(const struct expected *a, const struct expected *b) {
    return a->top1 == b->top1 && a->p1 == b->p1 && memcmp(&a->box, &b->box, sizeof a->box) == 0 &&
           a->len == b->len && memcmp(a->map, b->map, a->len * sizeof(float)) == 0;
}

static void *worker(void *arg) {
    size_t t = (size_t)(uintptr_t)arg, i, mismatches = 0;
    for (i = 0; i < iterations; i++) {
        size_t img = (t + i) % n_images, n = 0;
        struct expected got;
        float probs[1000];
        memset(&got, 0, sizeof got);
        if (!explain_one(img, &got) || !same(&got, &expected[img])) mismatches++;
        free(got.map);
        /* Concurrent reads of one explanation. */
        if (chip_explanation_probabilities(shared, 0, probs, 1000, &n) != CHIP_STATUS_OK || n != 1000) mismatches++;
    }
    return (void *)(uintptr_t)mismatches;
}

int main(int argc, char **argv) {
    chip_model *m = NULL;
    chip_layer_fit *fit = NULL;
    chip_explainer *ex = NULL;
    chip_explanation *sh = NULL;
    chip_fit_options fo = {.struct_size = sizeof(chip_fit_options)};
    chip_model_options mo = {.struct_size = sizeof(chip_model_options)};
    size_t gates;
    const char *const *images;
    pthread_t threads[64];
    size_t n_threads, i, n = 0, mismatches = 0;
    size_t classes[MAX_IMAGES];
    const chip_layer_fit *fits[1];

    if (argc < 8) {
        fprintf(stderr, "usage: %s <model.onnx> <layer> <threads> <iterations> <gates> <ort threads> <image> [...]\n", argv[0]);
        return 2;
    }
    n_threads = (size_t)atoi(argv[3]);
    iterations = (size_t)atoi(argv[4]);
    gates = (size_t)atoi(argv[5]);
    REQUIRE_OK(chip_model_options_default(&mo));
    mo.threads = (size_t)atoi(argv[6]);
    images = (const char *const *)(argv + 7);
    n_images = (size_t)(argc - 7);
    if (n_images > MAX_IMAGES) n_images = MAX_IMAGES;
    if (n_threads < 1 || n_threads > 64) return 2;

    REQUIRE_OK(chip_model_load(argv[1], &mo, &m));
    REQUIRE_OK(chip_model_preprocess_file(m, images[0], NULL, 0, &per_image, NULL));
    for (i = 0; i < n_images; i++) {
        float probs[1000];
        size_t k, best = 0;
        tensors[i] = (float *)malloc(per_image * sizeof(float));
        REQUIRE_OK(chip_model_preprocess_file(m, images[i], tensors[i], per_image, &n, &sizes[i]));
        REQUIRE_OK(chip_model_predict(m, tensors[i], per_image, 1, probs, 1000, &n));
        for (k = 1; k < 1000; k++)
            if (probs[k] > probs[best]) best = k;
        classes[i] = best;
    }
    REQUIRE_OK(chip_fit_options_default(&fo));
    fo.gates = gates;
    fo.classes = classes;
    fo.class_count = n_images; /* duplicates are allowed */
    REQUIRE_OK(chip_fit_layer(m, argv[2], IMAGES_FILES(images, n_images), &fo, &fit));
    fits[0] = fit;
    REQUIRE_OK(chip_explainer_new(m, fits, 1, &ex));
    /* The model handle may go: the explainer keeps its own reference. */
    chip_model_free(m);
    explainer = ex;

    for (i = 0; i < n_images; i++) REQUIRE_OK(explain_one(i, &expected[i]) ? CHIP_STATUS_OK : CHIP_STATUS_PANIC);
    REQUIRE_OK(chip_explain(ex, IMAGES_TENSOR(tensors[0], per_image, 1, &sizes[0]), NULL, &sh));
    shared = sh;

    for (i = 0; i < n_threads; i++) CHECK(pthread_create(&threads[i], NULL, worker, (void *)(uintptr_t)i) == 0);
    for (i = 0; i < n_threads; i++) {
        void *r = NULL;
        CHECK(pthread_join(threads[i], &r) == 0);
        mismatches += (size_t)(uintptr_t)r;
    }
    CHECK(mismatches == 0);
    printf("test_threads: %zu threads x %zu explanations, %zu mismatches\n", n_threads, iterations, mismatches);

    for (i = 0; i < n_images; i++) {
        free(expected[i].map);
        free(tensors[i]);
    }
    chip_explanation_free(sh);
    chip_explainer_free(ex);
    chip_layer_fit_free(fit);
    return check_report("test_threads");
}
