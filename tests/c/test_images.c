/*
 * chip_fit_layer and chip_explain with a chip_images descriptor of each kind (files, encoded bytes,
 * a preprocessed tensor with the original sizes) give what the older per-kind entry points give, and
 * a bad descriptor (NULL, wrong struct_size, unknown kind, no images, missing pointers) is refused
 * with its own status and message before anything runs.
 *
 * usage: test_images <model.onnx> <layer> <scratch dir> <image> <image> <image> [...]
 */
#include "check.h"

#include <math.h>
#include <stdint.h>

#define N 3

static chip_images descriptor(int kind) {
    chip_images d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.kind = kind;
    d.count = N;
    return d;
}

/* Largest |a - b| over the solved rows, relative to the largest |a|. */
static double fit_difference(const chip_layer_fit *a, const chip_layer_fit *b, const size_t *classes, size_t n_classes) {
    size_t channels = 0, n, c, k;
    double maxdiff = 0, maxabs = 0;
    float *ra, *rb;
    REQUIRE_OK(chip_layer_fit_channel_count(a, &channels));
    ra = (float *)malloc(channels * sizeof(float));
    rb = (float *)malloc(channels * sizeof(float));
    for (c = 0; c < n_classes; c++) {
        REQUIRE_OK(chip_layer_fit_weights_row(a, classes[c], ra, channels, &n));
        REQUIRE_OK(chip_layer_fit_weights_row(b, classes[c], rb, channels, &n));
        for (k = 0; k < channels; k++) {
            if (fabs((double)ra[k] - rb[k]) > maxdiff) maxdiff = fabs((double)ra[k] - rb[k]);
            if (fabs(ra[k]) > maxabs) maxabs = fabs(ra[k]);
        }
    }
    free(ra);
    free(rb);
    CHECK(maxabs > 0); /* a fit of all zeros would make every comparison vacuous */
    return maxdiff / (maxabs > 0 ? maxabs : 1);
}

/* Largest difference of probabilities and top-1 maps (relative to the map's maximum) of two explanations. */
static double explanation_difference(const chip_explanation *a, const chip_explanation *b) {
    size_t i, j, na = 0, nb = 0, la = 0, lb = 0, ca = 0, cb = 0;
    double worst = 0;
    CHECK(chip_explanation_image_count(a, &na) == CHIP_STATUS_OK && chip_explanation_image_count(b, &nb) == CHIP_STATUS_OK);
    CHECK(na == N && nb == N);
    for (i = 0; i < na && i < nb; i++) {
        float pa[1000], pb[1000], *ma, *mb, max = 0;
        float qa = 0, qb = 0;
        chip_size sa = {0, 0}, sb = {0, 0};
        REQUIRE_OK(chip_explanation_probabilities(a, i, pa, 1000, &la));
        REQUIRE_OK(chip_explanation_probabilities(b, i, pb, 1000, &lb));
        CHECK(la == lb);
        for (j = 0; j < la; j++)
            if (fabs((double)pa[j] - pb[j]) > worst) worst = fabs((double)pa[j] - pb[j]);
        REQUIRE_OK(chip_explanation_class(a, i, 0, &ca, &qa));
        REQUIRE_OK(chip_explanation_class(b, i, 0, &cb, &qb));
        CHECK(ca == cb);
        REQUIRE_OK(chip_explanation_image_size(a, i, &sa));
        REQUIRE_OK(chip_explanation_image_size(b, i, &sb));
        CHECK(sa.width == sb.width && sa.height == sb.height);
        REQUIRE_OK(chip_explanation_map(a, i, 0, 0, NULL, 0, &la));
        REQUIRE_OK(chip_explanation_map(b, i, 0, 0, NULL, 0, &lb));
        CHECK(la == lb && la == (size_t)sa.width * sa.height);
        if (la != lb) continue;
        ma = (float *)malloc(la * sizeof(float));
        mb = (float *)malloc(lb * sizeof(float));
        REQUIRE_OK(chip_explanation_map(a, i, 0, 0, ma, la, &la));
        REQUIRE_OK(chip_explanation_map(b, i, 0, 0, mb, lb, &lb));
        for (j = 0; j < la; j++)
            if (ma[j] > max) max = ma[j];
        CHECK(max > 0);
        for (j = 0; j < la; j++)
            if (fabs((double)ma[j] - mb[j]) / (max > 0 ? max : 1) > worst) worst = fabs((double)ma[j] - mb[j]) / (max > 0 ? max : 1);
        free(ma);
        free(mb);
    }
    return worst;
}

int main(int argc, char **argv) {
    const char *model_path, *layer;
    const char **paths;
    chip_model *m = NULL;
    chip_layer_fit *old_fit = NULL, *fit = NULL;
    chip_explainer *ex = NULL;
    chip_explanation *old_e = NULL, *e = NULL;
    chip_fit_options fo = {.struct_size = sizeof(chip_fit_options)};
    chip_explain_options eo = {.struct_size = sizeof(chip_explain_options)};
    chip_images files, encoded, tensor, bad;
    unsigned char *bufs[N];
    const unsigned char *cbufs[N];
    size_t lens[N], per = 0, n = 0, i;
    chip_size sizes[N];
    float *data;
    size_t classes[N]; /* the images' top-1 classes, so that every explained map has weights */
    float *probs;
    const char *bad_paths[N];

    if (argc < 4 + N) {
        fprintf(stderr, "usage: %s <model.onnx> <layer> <scratch dir> <image> x%d\n", argv[0], N);
        return 2;
    }
    model_path = argv[1];
    layer = argv[2];
    paths = (const char **)(argv + 4);
    REQUIRE_OK(chip_model_load(model_path, NULL, &m));

    files = descriptor(CHIP_IMAGES_FILES);
    files.paths = paths;
    encoded = descriptor(CHIP_IMAGES_ENCODED);
    for (i = 0; i < N; i++) {
        bufs[i] = read_file(paths[i], &lens[i]);
        cbufs[i] = bufs[i];
    }
    encoded.data = cbufs;
    encoded.lens = lens;
    REQUIRE_OK(chip_model_preprocess_file(m, paths[0], NULL, 0, &per, NULL));
    data = (float *)malloc(N * per * sizeof(float));
    for (i = 0; i < N; i++)
        REQUIRE_OK(chip_model_preprocess_file(m, paths[i], data + i * per, per, &n, &sizes[i]));
    tensor = descriptor(CHIP_IMAGES_TENSOR);
    tensor.tensor = data;
    tensor.tensor_len = N * per;
    tensor.sizes = sizes;

    probs = (float *)malloc(N * 1000 * sizeof(float));
    REQUIRE_OK(chip_model_predict(m, data, N * per, N, probs, N * 1000, &n));
    for (i = 0; i < N; i++) {
        size_t c;
        classes[i] = 0;
        for (c = 1; c < 1000; c++)
            if (probs[i * 1000 + c] > probs[i * 1000 + classes[i]]) classes[i] = c;
    }
    free(probs);

    /* Fits: each kind of descriptor gives the fit of chip_fit_layer_paths. */
    REQUIRE_OK(chip_fit_options_default(&fo));
    fo.gates = 16;
    fo.gate_batch = 8;
    fo.image_batch = 2;
    fo.classes = classes;
    fo.class_count = N;
    REQUIRE_OK(chip_fit_layer(m, layer, IMAGES_FILES(paths, N), &fo, &old_fit));
    REQUIRE_OK(chip_fit_layer(m, layer, &files, &fo, &fit));
    CHECK(fit_difference(old_fit, fit, classes, N) == 0); /* the same code path: bit for bit */
    chip_layer_fit_free(fit);
    fit = NULL;
    REQUIRE_OK(chip_fit_layer(m, layer, &encoded, &fo, &fit));
    CHECK(fit_difference(old_fit, fit, classes, N) <= 1e-5);
    chip_layer_fit_free(fit);
    fit = NULL;
    REQUIRE_OK(chip_fit_layer(m, layer, &tensor, &fo, &fit));
    CHECK(fit_difference(old_fit, fit, classes, N) <= 1e-5);
    chip_layer_fit_free(fit);
    fit = NULL;

    /* Explanations: each kind gives what chip_explain_files gives (the tensor with its original sizes). */
    {
        const chip_layer_fit *fits[1];
        fits[0] = old_fit;
        REQUIRE_OK(chip_explainer_new(m, fits, 1, &ex));
    }
    REQUIRE_OK(chip_explain_options_default(&eo));
    REQUIRE_OK(chip_explain(ex, IMAGES_FILES(paths, N), &eo, &old_e));
    REQUIRE_OK(chip_explain(ex, &files, &eo, &e));
    CHECK(explanation_difference(old_e, e) == 0);
    chip_explanation_free(e);
    e = NULL;
    REQUIRE_OK(chip_explain(ex, &encoded, NULL, &e));
    CHECK(explanation_difference(old_e, e) <= 1e-5);
    chip_explanation_free(e);
    e = NULL;
    REQUIRE_OK(chip_explain(ex, &tensor, &eo, &e));
    CHECK(explanation_difference(old_e, e) <= 1e-5);
    chip_explanation_free(e);
    e = NULL;

    /* Bad descriptors: each refused with its status, the output handle left NULL. */
    fit = (chip_layer_fit *)&fo; /* any non-NULL value: must be reset on failure */
    e = (chip_explanation *)&eo;
    CHECK_STATUS(chip_fit_layer(m, layer, NULL, &fo, &fit), CHIP_STATUS_NULL_POINTER);
    CHECK_ERROR_MENTIONS("images is NULL");
    CHECK(fit == NULL);
    CHECK_STATUS(chip_explain(ex, NULL, &eo, &e), CHIP_STATUS_NULL_POINTER);
    CHECK(e == NULL);
    bad = files;
    bad.struct_size = sizeof bad + 8;
    CHECK_STATUS(chip_fit_layer(m, layer, &bad, &fo, &fit), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("struct_size");
    bad.struct_size = 0;
    CHECK_STATUS(chip_explain(ex, &bad, &eo, &e), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("struct_size");
    bad = files;
    bad.kind = 0;
    CHECK_STATUS(chip_fit_layer(m, layer, &bad, &fo, &fit), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("kind 0");
    bad.kind = 42;
    CHECK_STATUS(chip_explain(ex, &bad, &eo, &e), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("kind 42");
    bad = files;
    bad.count = 0;
    CHECK_STATUS(chip_fit_layer(m, layer, &bad, &fo, &fit), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("count is 0");
    CHECK_STATUS(chip_explain(ex, &bad, &eo, &e), CHIP_STATUS_INVALID_ARGUMENT);
    bad = files;
    bad.paths = NULL;
    bad.data = cbufs; /* fields of another kind are not read */
    CHECK_STATUS(chip_fit_layer(m, layer, &bad, &fo, &fit), CHIP_STATUS_NULL_POINTER);
    CHECK_ERROR_MENTIONS("images->paths is NULL");
    for (i = 0; i < N; i++) bad_paths[i] = paths[i];
    bad_paths[2] = NULL;
    bad.paths = bad_paths;
    CHECK_STATUS(chip_explain(ex, &bad, &eo, &e), CHIP_STATUS_NULL_POINTER);
    CHECK_ERROR_MENTIONS("images->paths[2]");
    bad = encoded;
    bad.lens = NULL;
    CHECK_STATUS(chip_explain(ex, &bad, &eo, &e), CHIP_STATUS_NULL_POINTER);
    CHECK_ERROR_MENTIONS("images->lens is NULL");
    bad.lens = lens;
    bad.data = NULL;
    CHECK_STATUS(chip_fit_layer(m, layer, &bad, &fo, &fit), CHIP_STATUS_NULL_POINTER);
    CHECK_ERROR_MENTIONS("images->data is NULL");
    bad = tensor;
    bad.tensor = NULL;
    CHECK_STATUS(chip_fit_layer(m, layer, &bad, &fo, &fit), CHIP_STATUS_NULL_POINTER);
    CHECK_ERROR_MENTIONS("images->tensor is NULL");
    bad = tensor;
    bad.tensor_len = N * per - 1;
    CHECK_STATUS(chip_explain(ex, &bad, &eo, &e), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("images->tensor holds");
    bad = tensor;
    sizes[1].width = 0;
    CHECK_STATUS(chip_explain(ex, &bad, &eo, &e), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("sizes[1]");
    CHECK(fit == NULL && e == NULL);

    chip_explanation_free(old_e);
    chip_explainer_free(ex);
    chip_layer_fit_free(old_fit);
    chip_model_free(m);
    free(data);
    for (i = 0; i < N; i++) free(bufs[i]);
    return check_report("test_images");
}
