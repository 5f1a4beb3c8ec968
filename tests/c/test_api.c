/*
 * Every function of chip.h on the real model and photos, and every error path: NULL pointers, buffer
 * sizes, unknown layers, mismatched and altered fit files, cancelled fits, invalid UTF-8, missing files,
 * corrupt model bytes.
 *
 * usage: test_api <model.onnx> <layer> <scratch dir> <image> <image> <image> [...]
 */
#include "check.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

static const char *model_path;
static const char *layer;
static const char *scratch;
static const char **images;
static size_t n_images;

static char *scratch_path(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", scratch, name);
    return buf;
}

/* ----------------------------------------------------------------------------------------------- */

static void test_version_and_status(void) {
    int i, j;
    CHECK(strcmp(chip_version(), CHIP_VERSION_STRING) == 0);
    CHECK(chip_abi_version() == CHIP_ABI_VERSION);
    for (i = 0; i <= CHIP_STATUS_PANIC; i++) {
        CHECK(strlen(chip_status_str(i)) > 0);
        CHECK(strcmp(chip_status_str(i), "unknown status") != 0);
        for (j = 0; j < i; j++) CHECK(strcmp(chip_status_str(i), chip_status_str(j)) != 0);
    }
    CHECK(strcmp(chip_status_str(CHIP_STATUS_PANIC + 1), "unknown status") == 0);
    CHECK(strcmp(chip_status_str(-5), "unknown status") == 0);
}

static void test_options(void) {
    chip_model_options mo = {.struct_size = sizeof(chip_model_options)};
    chip_fit_options fo = {.struct_size = sizeof(chip_fit_options)};
    chip_explain_options eo = {.struct_size = sizeof(chip_explain_options)};
    chip_model *m = (chip_model *)&mo; /* any non-NULL value: must be reset to NULL on failure */

    CHECK_STATUS(chip_model_options_default(NULL), CHIP_STATUS_NULL_POINTER);
    CHECK_ERROR_MENTIONS("opts is NULL");
    CHECK_STATUS(chip_fit_options_default(NULL), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_explain_options_default(NULL), CHIP_STATUS_NULL_POINTER);
    REQUIRE_OK(chip_model_options_default(&mo));
    REQUIRE_OK(chip_fit_options_default(&fo));
    REQUIRE_OK(chip_explain_options_default(&eo));
    CHECK(strcmp(chip_last_error(), "") == 0);
    CHECK(mo.struct_size == sizeof mo && fo.struct_size == sizeof fo && eo.struct_size == sizeof eo);
    CHECK(mo.device == CHIP_DEVICE_CPU && mo.ort_lib == NULL && mo.threads == 0);
    CHECK(fo.gates > 0 && fo.lambda_rel > 0 && fo.sigma2_rel > 0 && fo.gate_batch > 0 && fo.image_batch > 0);
    CHECK(fo.classes == NULL && fo.class_count == 0 && fo.progress == NULL && fo.user_data == NULL);
    CHECK(eo.top_k == 1 && eo.class_count == 0 && eo.refined == 0 && eo.original_size != 0);
    CHECK(eo.threshold > 0 && eo.threshold < 1);

    /* The defaults are written within the caller's struct_size: an older, smaller struct (here one
     * that ends after `gates`) is not overrun; a larger one than the library's is refused. */
    {
        chip_fit_options older;
        memset(&older, 0x7F, sizeof older);
        older.struct_size = 2 * sizeof(size_t);
        REQUIRE_OK(chip_fit_options_default(&older));
        CHECK(older.struct_size == 2 * sizeof(size_t) && older.gates == fo.gates);
        CHECK(((const unsigned char *)&older)[2 * sizeof(size_t)] == 0x7F);
        older.struct_size = sizeof older + 8;
        CHECK_STATUS(chip_fit_options_default(&older), CHIP_STATUS_INVALID_ARGUMENT);
        CHECK_ERROR_MENTIONS("chip_fit_options.struct_size");
    }
    mo.struct_size = sizeof mo + 8;
    CHECK_STATUS(chip_model_load(model_path, &mo, &m), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("struct_size");
    CHECK(m == NULL);
    /* A zero struct_size says nothing about the caller's struct: refused by consumers and by the
     * defaults alike (a zero-initialised older struct must not be filled to this library's size). */
    mo.struct_size = 0;
    CHECK_STATUS(chip_model_load(model_path, &mo, &m), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(chip_model_options_default(&mo), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("struct_size is 0");
    mo.struct_size = sizeof mo;
    REQUIRE_OK(chip_model_options_default(&mo));
    mo.device = 42;
    CHECK_STATUS(chip_model_load(model_path, &mo, &m), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("unknown device 42");
}

static void test_model_errors(void) {
    chip_model *m = NULL;
    unsigned char *bytes;
    size_t len, i;
    const char bad_utf8[] = {'m', 'o', 'd', (char)0xC3, (char)0x28, '.', 'o', 'n', 'n', 'x', 0};

    CHECK_STATUS(chip_model_load(NULL, NULL, &m), CHIP_STATUS_NULL_POINTER);
    CHECK_ERROR_MENTIONS("path is NULL");
    CHECK_STATUS(chip_model_load(model_path, NULL, NULL), CHIP_STATUS_NULL_POINTER);
    CHECK_ERROR_MENTIONS("out_model is NULL");
    CHECK_STATUS(chip_model_load(bad_utf8, NULL, &m), CHIP_STATUS_INVALID_UTF8);
    CHECK_ERROR_MENTIONS("UTF-8");
    CHECK_STATUS(chip_model_load(scratch_path("no-such-model.onnx"), NULL, &m), CHIP_STATUS_IO);
    CHECK_ERROR_MENTIONS("no-such-model.onnx");
    CHECK(m == NULL);

    bytes = read_file(model_path, &len);
    CHECK_STATUS(chip_model_load_bytes(NULL, len, NULL, &m), CHIP_STATUS_NULL_POINTER);
    /* Truncated: half of the model. */
    CHECK_STATUS(chip_model_load_bytes(bytes, len / 2, NULL, &m), CHIP_STATUS_MODEL);
    CHECK(m == NULL);
    /* Garbage. */
    for (i = 0; i < 4096 && i < len; i++) bytes[i] = (unsigned char)(i * 7 + 3);
    CHECK_STATUS(chip_model_load_bytes(bytes, 4096, NULL, &m), CHIP_STATUS_MODEL);
    CHECK_STATUS(chip_model_load_bytes(bytes, 0, NULL, &m), CHIP_STATUS_MODEL);
    CHECK(m == NULL);
    free(bytes);
    /* An image is not a model. */
    CHECK_STATUS(chip_model_load(images[0], NULL, &m), CHIP_STATUS_MODEL);
    CHECK(m == NULL);
}

static void test_model_queries(const chip_model *m) {
    size_t classes = 0, n = 0, count = 0, need = 0, i, c, hh, ww;
    chip_size input = {0, 0};
    char label[256], small[2];

    CHECK_STATUS(chip_model_class_count(NULL, &classes), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_model_class_count(m, NULL), CHIP_STATUS_NULL_POINTER);
    REQUIRE_OK(chip_model_class_count(m, &classes));
    CHECK(classes == 1000);
    CHECK_STATUS(chip_model_input_size(m, NULL), CHIP_STATUS_NULL_POINTER);
    REQUIRE_OK(chip_model_input_size(m, &input));
    CHECK(input.width == 224 && input.height == 224);

    /* Labels: ImageNet class 0 is the tench; size query, exact and short buffers. */
    REQUIRE_OK(chip_model_class_label(m, 0, NULL, 0, &need));
    REQUIRE_OK(chip_model_class_label(m, 0, label, sizeof label, &n));
    CHECK(n == need && strlen(label) + 1 == need);
    CHECK(strstr(label, "tench") != NULL);
    small[0] = 'x';
    CHECK_STATUS(chip_model_class_label(m, 0, small, sizeof small, &n), CHIP_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == need && small[0] == 'x');
    CHECK_STATUS(chip_model_class_label(m, 0, NULL, 5, &n), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_model_class_label(m, classes, label, sizeof label, &n), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("out of range");
    REQUIRE_OK(chip_model_class_label(m, classes - 1, label, sizeof label, NULL));
    CHECK(strlen(label) > 0);

    /* Layers: the named layer is among them, shapes are positive. */
    REQUIRE_OK(chip_model_layer_count(m, &count));
    CHECK(count > 5);
    {
        int found = 0;
        for (i = 0; i < count; i++) {
            size_t ch = 0;
            REQUIRE_OK(chip_model_layer_info(m, i, label, sizeof label, &n, &ch, &hh, &ww));
            CHECK(n == strlen(label) + 1 && ch > 0 && hh > 0 && ww > 0);
            if (strcmp(label, layer) == 0) found = 1;
        }
        CHECK(found);
    }
    /* Shape only, name skipped; a short name buffer still gives the shape. */
    hh = 0;
    REQUIRE_OK(chip_model_layer_info(m, 0, NULL, 0, &need, NULL, &hh, NULL));
    CHECK(hh > 0 && need > 1);
    ww = 0;
    CHECK_STATUS(chip_model_layer_info(m, 0, small, sizeof small, &n, NULL, NULL, &ww), CHIP_STATUS_BUFFER_TOO_SMALL);
    CHECK(ww > 0 && n == need);
    CHECK_STATUS(chip_model_layer_info(m, count, label, sizeof label, &n, NULL, NULL, NULL), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(chip_model_layer_count(NULL, &count), CHIP_STATUS_NULL_POINTER);
    (void)c;
}

/* Preprocessed tensor of images[0..k). */
static float *prepare(const chip_model *m, size_t k, chip_size *sizes) {
    size_t per = 0, n = 0, i;
    float *data;
    REQUIRE_OK(chip_model_preprocess_file(m, images[0], NULL, 0, &per, NULL));
    data = (float *)malloc(per * k * sizeof(float));
    for (i = 0; i < k; i++) {
        REQUIRE_OK(chip_model_preprocess_file(m, images[i], data + i * per, per, &n, &sizes[i]));
        CHECK(n == per);
    }
    return data;
}

static void test_preprocess_and_predict(const chip_model *m, size_t *top1) {
    size_t per = 0, n = 0, len, i, k;
    chip_size size = {0, 0}, size2 = {0, 0}, sizes[3];
    float *a, *b, *probs, small[4];
    unsigned char *bytes;
    const char bad_utf8[] = {(char)0xFF, 'x', '.', 'j', 'p', 'g', 0};

    REQUIRE_OK(chip_model_preprocess_file(m, images[0], NULL, 0, &per, &size));
    CHECK(per == 3 * 224 * 224);
    CHECK(size.width > 0 && size.height > 0);
    a = (float *)malloc(per * sizeof(float));
    b = (float *)malloc(per * sizeof(float));
    REQUIRE_OK(chip_model_preprocess_file(m, images[0], a, per, &n, NULL));
    bytes = read_file(images[0], &len);
    REQUIRE_OK(chip_model_preprocess_encoded(m, bytes, len, b, per, &n, &size2));
    CHECK(memcmp(a, b, per * sizeof(float)) == 0);
    CHECK(size.width == size2.width && size.height == size2.height);
    CHECK_STATUS(chip_model_preprocess_encoded(m, bytes, len / 3, b, per, &n, NULL), CHIP_STATUS_IMAGE);
    CHECK_STATUS(chip_model_preprocess_encoded(m, NULL, len, b, per, &n, NULL), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_model_preprocess_file(m, images[0], small, 4, &n, NULL), CHIP_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == per);
    CHECK_STATUS(chip_model_preprocess_file(m, scratch_path("missing.jpg"), a, per, &n, NULL), CHIP_STATUS_IO);
    CHECK_STATUS(chip_model_preprocess_file(m, bad_utf8, a, per, &n, NULL), CHIP_STATUS_INVALID_UTF8);
    CHECK_STATUS(chip_model_preprocess_file(m, model_path, a, per, &n, NULL), CHIP_STATUS_IMAGE);
    free(bytes);
    free(a);
    free(b);

    /* Predictions: rows sum to 1, each image's top-1 also alone in a batch of one. */
    a = prepare(m, 3, sizes);
    REQUIRE_OK(chip_model_predict(m, a, 3 * per, 3, NULL, 0, &n));
    CHECK(n == 3000);
    probs = (float *)malloc(n * sizeof(float));
    CHECK_STATUS(chip_model_predict(m, a, 3 * per, 3, probs, n - 1, &n), CHIP_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(chip_model_predict(m, a, 3 * per - 1, 3, probs, n, &n), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("3 images");
    CHECK_STATUS(chip_model_predict(m, NULL, 3 * per, 3, probs, n, &n), CHIP_STATUS_NULL_POINTER);
    REQUIRE_OK(chip_model_predict(m, a, 3 * per, 3, probs, 3000, &n));
    for (i = 0; i < 3; i++) {
        double sum = 0;
        float single[1000];
        size_t best = 0;
        for (k = 0; k < 1000; k++) {
            sum += probs[i * 1000 + k];
            if (probs[i * 1000 + k] > probs[i * 1000 + best]) best = k;
        }
        CHECK(fabs(sum - 1.0) < 1e-4);
        top1[i] = best;
        REQUIRE_OK(chip_model_predict(m, a + i * per, per, 1, single, 1000, &n));
        for (k = 0; k < 1000; k++) CHECK(fabsf(single[k] - probs[i * 1000 + k]) < 1e-5f);
    }
    free(probs);
    free(a);
}

/* ----------------------------------------------------------------------------------------------- */

struct progress_log {
    size_t calls[3];
    size_t last_done[3];
    size_t total[3];
    int monotone;
    size_t cancel_after; /* 0: never */
    size_t seen;
};

static int on_progress(void *user, chip_progress_kind kind, size_t done, size_t total) {
    struct progress_log *p = (struct progress_log *)user;
    if (kind < 0 || kind > 2) return 1;
    if (done < p->last_done[kind] || done > total) p->monotone = 0;
    p->calls[kind]++;
    p->last_done[kind] = done;
    p->total[kind] = total;
    p->seen++;
    return p->cancel_after && p->seen >= p->cancel_after;
}

static chip_layer_fit *test_fit(const chip_model *m, const size_t *classes, size_t n_classes) {
    chip_fit_options fo = {.struct_size = sizeof(chip_fit_options)};
    chip_layer_fit *fit = NULL, *fit2 = NULL;
    struct progress_log log;
    size_t channels = 0, n = 0, nc = 0, c, k, per = 0, solved_nonzero = 0;
    float *row, *row2, *tensor;
    chip_size sizes[4];
    char name[256];
    const char *bad_paths[2];
    const char bad_utf8[] = {'a', (char)0xE2, (char)0x82, 0};
    const size_t fit_images = 3;

    REQUIRE_OK(chip_fit_options_default(&fo));
    fo.gates = 24;
    fo.gate_batch = 8;
    fo.image_batch = 2;
    fo.classes = classes;
    fo.class_count = n_classes;
    memset(&log, 0, sizeof log);
    log.monotone = 1;
    fo.progress = on_progress;
    fo.user_data = &log;

    /* Argument errors first: nothing runs. */
    CHECK_STATUS(chip_fit_layer(NULL, layer, IMAGES_FILES(images, fit_images), &fo, &fit), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_fit_layer(m, NULL, IMAGES_FILES(images, fit_images), &fo, &fit), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_fit_layer(m, layer, IMAGES_FILES(NULL, fit_images), &fo, &fit), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_fit_layer(m, layer, IMAGES_FILES(images, fit_images), &fo, NULL), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_fit_layer(m, "no_such_layer", IMAGES_FILES(images, fit_images), &fo, &fit), CHIP_STATUS_UNKNOWN_LAYER);
    CHECK_ERROR_MENTIONS("no_such_layer");
    CHECK_STATUS(chip_fit_layer(m, bad_utf8, IMAGES_FILES(images, fit_images), &fo, &fit), CHIP_STATUS_INVALID_UTF8);
    bad_paths[0] = images[0];
    bad_paths[1] = bad_utf8;
    CHECK_STATUS(chip_fit_layer(m, layer, IMAGES_FILES(bad_paths, 2), &fo, &fit), CHIP_STATUS_INVALID_UTF8);
    CHECK_ERROR_MENTIONS("paths[1]");
    bad_paths[1] = NULL;
    CHECK_STATUS(chip_fit_layer(m, layer, IMAGES_FILES(bad_paths, 2), &fo, &fit), CHIP_STATUS_NULL_POINTER);
    CHECK_ERROR_MENTIONS("paths[1]");
    bad_paths[1] = scratch_path("missing.jpg");
    CHECK_STATUS(chip_fit_layer(m, layer, IMAGES_FILES(bad_paths, 2), &fo, &fit), CHIP_STATUS_IO);
    CHECK_ERROR_MENTIONS("missing.jpg");
    fo.class_count = 2;
    fo.classes = NULL;
    CHECK_STATUS(chip_fit_layer(m, layer, IMAGES_FILES(images, fit_images), &fo, &fit), CHIP_STATUS_NULL_POINTER);
    fo.classes = classes;
    fo.class_count = n_classes;
    CHECK(fit == NULL);

    /* Cancelled through the callback after a few reports: nothing comes out. */
    log.cancel_after = 2;
    CHECK_STATUS(chip_fit_layer(m, layer, IMAGES_FILES(images, fit_images), &fo, &fit), CHIP_STATUS_CANCELLED);
    CHECK(fit == NULL);
    CHECK(log.seen == 2);

    /* The real fit. */
    memset(&log, 0, sizeof log);
    log.monotone = 1;
    REQUIRE_OK(chip_fit_layer(m, layer, IMAGES_FILES(images, fit_images), &fo, &fit));
    CHECK(log.monotone);
    /* Each image, its views and its mosaics pass through the layer once. */
    CHECK(log.calls[CHIP_PROGRESS_IMAGES] > 0 && log.total[CHIP_PROGRESS_IMAGES] == fit_images * (1 + fo.augment + fo.mosaics));
    CHECK(log.last_done[CHIP_PROGRESS_IMAGES] == log.total[CHIP_PROGRESS_IMAGES]);
    CHECK(log.calls[CHIP_PROGRESS_SUFFIX_RUNS] > 0);
    CHECK(log.last_done[CHIP_PROGRESS_SUFFIX_RUNS] == log.total[CHIP_PROGRESS_SUFFIX_RUNS]);
    CHECK(log.calls[CHIP_PROGRESS_CLASSES] > 0 && log.total[CHIP_PROGRESS_CLASSES] == n_classes);

    REQUIRE_OK(chip_layer_fit_layer_name(fit, name, sizeof name, &n));
    CHECK(strcmp(name, layer) == 0 && n == strlen(layer) + 1);
    REQUIRE_OK(chip_layer_fit_channel_count(fit, &channels));
    REQUIRE_OK(chip_layer_fit_class_count(fit, &nc));
    CHECK(nc == 1000 && channels > 0);
    CHECK_STATUS(chip_layer_fit_channel_count(fit, NULL), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_layer_fit_class_count(NULL, &nc), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_layer_fit_layer_name(fit, name, 1, &n), CHIP_STATUS_BUFFER_TOO_SMALL);

    /* Rows: solved classes have weights, the others are zero. */
    row = (float *)malloc(channels * sizeof(float));
    row2 = (float *)malloc(channels * sizeof(float));
    REQUIRE_OK(chip_layer_fit_weights_row(fit, 0, NULL, 0, &n));
    CHECK(n == channels);
    CHECK_STATUS(chip_layer_fit_weights_row(fit, 0, row, channels - 1, &n), CHIP_STATUS_BUFFER_TOO_SMALL);
    CHECK_STATUS(chip_layer_fit_weights_row(fit, 1000, row, channels, &n), CHIP_STATUS_INVALID_ARGUMENT);
    for (c = 0; c < 1000; c++) {
        int solved = 0, nonzero = 0;
        for (k = 0; k < n_classes; k++) solved |= classes[k] == c;
        REQUIRE_OK(chip_layer_fit_weights_row(fit, c, row, channels, &n));
        for (k = 0; k < channels; k++) {
            CHECK(isfinite(row[k]));
            nonzero |= row[k] != 0.0f;
        }
        if (!solved) CHECK(!nonzero);
        if (solved && nonzero) solved_nonzero++;
    }
    CHECK(solved_nonzero == n_classes);

    /* The same images as a tensor give the same fit (same gates, same order). */
    tensor = prepare(m, fit_images, sizes);
    REQUIRE_OK(chip_model_preprocess_file(m, images[0], NULL, 0, &per, NULL));
    fo.progress = NULL;
    CHECK_STATUS(chip_fit_layer(m, layer, IMAGES_TENSOR(tensor, per * fit_images - 1, fit_images, NULL), &fo, &fit2), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(chip_fit_layer(m, layer, IMAGES_TENSOR(NULL, per * fit_images, fit_images, NULL), &fo, &fit2), CHIP_STATUS_NULL_POINTER);
    REQUIRE_OK(chip_fit_layer(m, layer, IMAGES_TENSOR(tensor, per * fit_images, fit_images, NULL), &fo, &fit2));
    for (k = 0; k < n_classes; k++) {
        size_t j;
        float maxdiff = 0, maxabs = 0;
        REQUIRE_OK(chip_layer_fit_weights_row(fit, classes[k], row, channels, &n));
        REQUIRE_OK(chip_layer_fit_weights_row(fit2, classes[k], row2, channels, &n));
        for (j = 0; j < channels; j++) {
            float d = fabsf(row[j] - row2[j]);
            if (d > maxdiff) maxdiff = d;
            if (fabsf(row[j]) > maxabs) maxabs = fabsf(row[j]);
        }
        CHECK(maxdiff <= 1e-5f * (maxabs > 1 ? maxabs : 1));
    }
    chip_layer_fit_free(fit2);
    free(tensor);
    free(row);
    free(row2);
    return fit;
}

static void test_fit_files(const chip_model *m, const chip_layer_fit *fit) {
    char *path;
    chip_layer_fit *loaded = NULL;
    chip_explainer *ex = NULL;
    chip_model *other = NULL;
    unsigned char *bytes, *model_bytes;
    size_t len, mlen, channels = 0, n, c;
    float *a, *b;
    const chip_layer_fit *fits[1];

    CHECK_STATUS(chip_layer_fit_save(NULL, scratch_path("x.chip")), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_layer_fit_save(fit, NULL), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_layer_fit_save(fit, scratch_path("no-such-dir/x.chip")), CHIP_STATUS_IO);
    path = scratch_path("fit.chip");
    REQUIRE_OK(chip_layer_fit_save(fit, path));
    REQUIRE_OK(chip_layer_fit_load(path, &loaded));

    /* Round trip: every row equal. */
    REQUIRE_OK(chip_layer_fit_channel_count(fit, &channels));
    a = (float *)malloc(channels * sizeof(float));
    b = (float *)malloc(channels * sizeof(float));
    for (c = 0; c < 1000; c++) {
        REQUIRE_OK(chip_layer_fit_weights_row(fit, c, a, channels, &n));
        REQUIRE_OK(chip_layer_fit_weights_row(loaded, c, b, channels, &n));
        if (memcmp(a, b, channels * sizeof(float)) != 0) {
            CHECK(!"weights differ after save and load");
            break;
        }
    }
    free(a);
    free(b);
    chip_layer_fit_free(loaded);
    loaded = NULL;

    /* Altered, truncated, newer version, not a fit file, missing. */
    bytes = read_file(path, &len);
    bytes[len / 2] ^= 0x40;
    write_file(scratch_path("altered.chip"), bytes, len);
    CHECK_STATUS(chip_layer_fit_load(scratch_path("altered.chip"), &loaded), CHIP_STATUS_FIT_FILE);
    bytes[len / 2] ^= 0x40;
    write_file(scratch_path("truncated.chip"), bytes, len - 100);
    CHECK_STATUS(chip_layer_fit_load(scratch_path("truncated.chip"), &loaded), CHIP_STATUS_FIT_FILE);
    CHECK_ERROR_MENTIONS("truncated");
    bytes[8] = 99; /* format version, little-endian u32 after the 8-byte magic: one this library does not know */
    write_file(scratch_path("newer.chip"), bytes, len);
    CHECK_STATUS(chip_layer_fit_load(scratch_path("newer.chip"), &loaded), CHIP_STATUS_FIT_VERSION);
    CHECK_STATUS(chip_layer_fit_load(images[0], &loaded), CHIP_STATUS_FIT_FILE);
    CHECK_STATUS(chip_layer_fit_load(scratch_path("missing.chip"), &loaded), CHIP_STATUS_IO);
    CHECK_STATUS(chip_layer_fit_load(NULL, &loaded), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_layer_fit_load(path, NULL), CHIP_STATUS_NULL_POINTER);
    CHECK(loaded == NULL);
    free(bytes);

    /* A fit belongs to its model: the same graph with one unknown protobuf field appended (field
     * 1000, varint 1) is another model file, so the fit does not match it. */
    model_bytes = read_file(model_path, &mlen);
    model_bytes = (unsigned char *)realloc(model_bytes, mlen + 3);
    model_bytes[mlen] = 0xC0;
    model_bytes[mlen + 1] = 0x3E;
    model_bytes[mlen + 2] = 0x01;
    REQUIRE_OK(chip_model_load_bytes(model_bytes, mlen + 3, NULL, &other));
    free(model_bytes);
    fits[0] = fit;
    CHECK_STATUS(chip_explainer_new(other, fits, 1, &ex), CHIP_STATUS_FIT_MISMATCH);
    CHECK(ex == NULL);
    chip_model_free(other);

    /* Explainer argument errors. */
    CHECK_STATUS(chip_explainer_new(NULL, fits, 1, &ex), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_explainer_new(m, NULL, 1, &ex), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_explainer_new(m, fits, 0, &ex), CHIP_STATUS_INVALID_ARGUMENT);
    fits[0] = NULL;
    CHECK_STATUS(chip_explainer_new(m, fits, 1, &ex), CHIP_STATUS_NULL_POINTER);
    CHECK_ERROR_MENTIONS("fits[0]");
    CHECK(ex == NULL);
}

/* ----------------------------------------------------------------------------------------------- */

/* Second implementation of the localization rule: largest 8-connected component of
 * {v >= t * max} (ties: the first found in row-major order), its inclusive bounding box. */
static int reference_box(const float *map, size_t w, size_t h, float t, chip_box *out) {
    size_t i, n = w * h, best = 0, *stack;
    float max = 0;
    int *label, found = 0, next = 1;
    out->x1 = out->y1 = out->x2 = out->y2 = -1; /* no box */
    for (i = 0; i < n; i++) {
        if (isnan(map[i])) return 0;
        if (map[i] > max) max = map[i];
    }
    if (!(max > 0)) return 0;
    label = (int *)calloc(n, sizeof(int));
    stack = (size_t *)malloc(n * sizeof(size_t));
    for (i = 0; i < n; i++) {
        size_t top = 0, size = 0;
        chip_box b;
        if (label[i] || map[i] < t * max) continue;
        b.x1 = b.x2 = (int32_t)(i % w);
        b.y1 = b.y2 = (int32_t)(i / w);
        label[i] = next;
        stack[top++] = i;
        while (top) {
            size_t p = stack[--top], x = p % w, y = p / w;
            int dx, dy;
            size++;
            if ((int32_t)x < b.x1) b.x1 = (int32_t)x;
            if ((int32_t)x > b.x2) b.x2 = (int32_t)x;
            if ((int32_t)y < b.y1) b.y1 = (int32_t)y;
            if ((int32_t)y > b.y2) b.y2 = (int32_t)y;
            for (dy = -1; dy <= 1; dy++)
                for (dx = -1; dx <= 1; dx++) {
                    long nx = (long)x + dx, ny = (long)y + dy;
                    size_t q;
                    if (nx < 0 || ny < 0 || nx >= (long)w || ny >= (long)h) continue;
                    q = (size_t)ny * w + (size_t)nx;
                    if (!label[q] && map[q] >= t * max) {
                        label[q] = next;
                        stack[top++] = q;
                    }
                }
        }
        next++;
        if (size > best) {
            best = size;
            *out = b;
            found = 1;
        }
    }
    free(label);
    free(stack);
    return found;
}

static void check_same_explanations(const chip_explanation *a, const chip_explanation *b) {
    size_t na = 0, nb = 0, i, j, la = 0, lb = 0;
    REQUIRE_OK(chip_explanation_image_count(a, &na));
    REQUIRE_OK(chip_explanation_image_count(b, &nb));
    CHECK(na == nb);
    REQUIRE_OK(chip_explanation_layer_count(a, &la));
    REQUIRE_OK(chip_explanation_layer_count(b, &lb));
    CHECK(la == lb);
    for (i = 0; i < na && i < nb; i++) {
        size_t ca = 0, cb = 0, n1 = 0, n2 = 0;
        float *m1, *m2;
        REQUIRE_OK(chip_explanation_class_count(a, i, &ca));
        REQUIRE_OK(chip_explanation_class_count(b, i, &cb));
        CHECK(ca == cb);
        for (j = 0; j < ca && j < cb; j++) {
            size_t k1, k2;
            float p1, p2;
            REQUIRE_OK(chip_explanation_class(a, i, j, &k1, &p1));
            REQUIRE_OK(chip_explanation_class(b, i, j, &k2, &p2));
            CHECK(k1 == k2 && p1 == p2);
            REQUIRE_OK(chip_explanation_map(a, i, j, 0, NULL, 0, &n1));
            REQUIRE_OK(chip_explanation_map(b, i, j, 0, NULL, 0, &n2));
            CHECK(n1 == n2);
            if (n1 != n2) continue;
            m1 = (float *)malloc(n1 * sizeof(float));
            m2 = (float *)malloc(n2 * sizeof(float));
            REQUIRE_OK(chip_explanation_map(a, i, j, 0, m1, n1, &n1));
            REQUIRE_OK(chip_explanation_map(b, i, j, 0, m2, n2, &n2));
            CHECK(memcmp(m1, m2, n1 * sizeof(float)) == 0);
            free(m1);
            free(m2);
        }
    }
}

static void test_explain(const chip_model *m, const chip_layer_fit *fit, const size_t *top1, const size_t *classes,
                         size_t n_classes) {
    chip_explainer *ex = NULL;
    chip_explanation *e_files = NULL, *e_enc = NULL, *e_tensor = NULL, *e = NULL;
    chip_explain_options eo = {.struct_size = sizeof(chip_explain_options)};
    const chip_layer_fit *fits[1];
    size_t n = 0, i, j, per = 0, count = 0, classes_n = 0;
    chip_size sizes[3];
    float *tensor;
    unsigned char *bufs[3];
    const unsigned char *cbufs[3];
    size_t lens[3];
    char name[256];
    const char *bad_paths[1];
    const char bad_utf8[] = {(char)0xC0, (char)0x80, 0};
    const size_t k3 = 3;

    fits[0] = fit;
    REQUIRE_OK(chip_explainer_new(m, fits, 1, &ex));
    REQUIRE_OK(chip_explainer_layer_count(ex, &count));
    CHECK(count == 1);
    REQUIRE_OK(chip_explainer_layer_name(ex, 0, name, sizeof name, &n));
    CHECK(strcmp(name, layer) == 0);
    CHECK_STATUS(chip_explainer_layer_name(ex, 1, name, sizeof name, &n), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(chip_explainer_layer_count(NULL, &count), CHIP_STATUS_NULL_POINTER);

    REQUIRE_OK(chip_explain_options_default(&eo));
    /* Files, encoded bytes and tensors give the same explanations. */
    REQUIRE_OK(chip_explain(ex, IMAGES_FILES(images, 3), &eo, &e_files));
    for (i = 0; i < 3; i++) {
        bufs[i] = read_file(images[i], &lens[i]);
        cbufs[i] = bufs[i];
    }
    REQUIRE_OK(chip_explain(ex, IMAGES_ENCODED(cbufs, lens, 3), NULL, &e_enc));
    tensor = prepare(m, 3, sizes);
    REQUIRE_OK(chip_model_preprocess_file(m, images[0], NULL, 0, &per, NULL));
    REQUIRE_OK(chip_explain(ex, IMAGES_TENSOR(tensor, 3 * per, 3, sizes), &eo, &e_tensor));
    check_same_explanations(e_files, e_enc);
    check_same_explanations(e_files, e_tensor);

    /* Accessors, checked against the model's own predictions and a second localization. */
    REQUIRE_OK(chip_explanation_image_count(e_files, &n));
    CHECK(n == 3);
    for (i = 0; i < 3; i++) {
        chip_size size = {0, 0}, ms = {0, 0};
        size_t top_n = 0, cls = 0, mw, mh, len = 0;
        float p = 0, prev = 2, probs[1000];
        chip_box b, ref;
        float *map;

        REQUIRE_OK(chip_explanation_image_size(e_files, i, &size));
        CHECK(size.width == sizes[i].width && size.height == sizes[i].height);
        REQUIRE_OK(chip_explanation_probabilities(e_files, i, probs, 1000, &n));
        CHECK(n == 1000);
        REQUIRE_OK(chip_explanation_top_count(e_files, i, &top_n));
        CHECK(top_n >= 1 && top_n <= 5);
        for (j = 0; j < top_n; j++) {
            REQUIRE_OK(chip_explanation_top(e_files, i, j, &cls, &p));
            CHECK(p <= prev && probs[cls] == p);
            prev = p;
        }
        REQUIRE_OK(chip_explanation_top(e_files, i, 0, &cls, &p));
        CHECK(cls == top1[i]);
        REQUIRE_OK(chip_explanation_class_count(e_files, i, &classes_n));
        CHECK(classes_n == 1);
        REQUIRE_OK(chip_explanation_class(e_files, i, 0, &cls, &p));
        CHECK(cls == top1[i]);

        REQUIRE_OK(chip_explanation_map_size(e_files, i, 0, 0, &ms));
        CHECK(ms.width == size.width && ms.height == size.height); /* original size by default */
        mw = ms.width;
        mh = ms.height;
        REQUIRE_OK(chip_explanation_map(e_files, i, 0, 0, NULL, 0, &len));
        CHECK(len == mw * mh);
        map = (float *)malloc(len * sizeof(float));
        CHECK_STATUS(chip_explanation_map(e_files, i, 0, 0, map, len - 1, &n), CHIP_STATUS_BUFFER_TOO_SMALL);
        CHECK(n == len);
        REQUIRE_OK(chip_explanation_map(e_files, i, 0, 0, map, len, &n));
        {
            double sum = 0;
            float max = 0;
            for (j = 0; j < len; j++) {
                CHECK(map[j] >= 0 && isfinite(map[j]));
                sum += map[j];
                if (map[j] > max) max = map[j];
            }
            CHECK(sum > 0 && max > 0); /* top-1 of each image is a fitted class */
        }
        REQUIRE_OK(chip_explanation_box(e_files, i, 0, 0, &b));
        CHECK(reference_box(map, mw, mh, eo.threshold, &ref) == 1);
        CHECK(b.x1 == ref.x1 && b.y1 == ref.y1 && b.x2 == ref.x2 && b.y2 == ref.y2);
        CHECK(b.x1 >= 0 && b.y1 >= 0 && b.x1 <= b.x2 && b.y1 <= b.y2);
        CHECK((uint32_t)b.x2 < size.width && (uint32_t)b.y2 < size.height);
        {
            chip_box lb, none = {-1, -1, -1, -1}, bad = {-1, 0, 3, 3};
            double iou = 0;
            float *zeros = (float *)calloc(len, sizeof(float));
            REQUIRE_OK(chip_localize(map, mw, mh, eo.threshold, &lb));
            CHECK(memcmp(&lb, &b, sizeof b) == 0);
            REQUIRE_OK(chip_iou(&lb, &ref, &iou));
            CHECK(iou == 1.0);
            /* No box: all corners -1, from chip_localize as from the reference; IoU 0 with it. */
            REQUIRE_OK(chip_localize(zeros, mw, mh, eo.threshold, &lb));
            CHECK(reference_box(zeros, mw, mh, eo.threshold, &ref) == 0);
            CHECK(memcmp(&lb, &none, sizeof lb) == 0 && memcmp(&ref, &none, sizeof ref) == 0);
            iou = -1;
            REQUIRE_OK(chip_iou(&b, &none, &iou));
            CHECK(iou == 0);
            CHECK_STATUS(chip_iou(&b, &bad, &iou), CHIP_STATUS_INVALID_ARGUMENT);
            CHECK_ERROR_MENTIONS("all -1 for no box");
            CHECK_STATUS(chip_localize(NULL, mw, mh, 0.5f, &lb), CHIP_STATUS_NULL_POINTER);
            CHECK_STATUS(chip_localize(map, mw, mh, 0.5f, NULL), CHIP_STATUS_NULL_POINTER);
            CHECK_STATUS(chip_iou(NULL, &ref, &iou), CHIP_STATUS_NULL_POINTER);
            free(zeros);
        }
        free(map);
    }

    /* Index errors and NULL outputs. */
    CHECK_STATUS(chip_explanation_probabilities(e_files, 3, NULL, 0, &n), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("image 3");
    CHECK_STATUS(chip_explanation_top(e_files, 0, 5, &n, NULL), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(chip_explanation_top(e_files, 0, 0, NULL, NULL), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_explanation_class(e_files, 0, 1, &n, NULL), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(chip_explanation_map(e_files, 0, 0, 1, NULL, 0, &n), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(chip_explanation_map(e_files, 0, 0, CHIP_REFINED, NULL, 0, &n), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("refined");
    CHECK_STATUS(chip_explanation_map_size(e_files, 0, 0, 0, NULL), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_explanation_box(e_files, 0, 0, 0, NULL), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_explanation_image_count(NULL, &n), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_explanation_image_size(e_files, 0, NULL), CHIP_STATUS_NULL_POINTER);

    /* Explain errors: each leaves the output NULL. */
    CHECK_STATUS(chip_explain(ex, IMAGES_TENSOR(tensor, 3 * per - 1, 3, sizes), &eo, &e), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(chip_explain(ex, IMAGES_TENSOR(NULL, 3 * per, 3, sizes), &eo, &e), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_explain(NULL, IMAGES_TENSOR(tensor, 3 * per, 3, sizes), &eo, &e), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_explain(ex, IMAGES_FILES(images, 3), &eo, NULL), CHIP_STATUS_NULL_POINTER);
    bad_paths[0] = bad_utf8;
    CHECK_STATUS(chip_explain(ex, IMAGES_FILES(bad_paths, 1), &eo, &e), CHIP_STATUS_INVALID_UTF8);
    bad_paths[0] = scratch_path("missing.png");
    CHECK_STATUS(chip_explain(ex, IMAGES_FILES(bad_paths, 1), &eo, &e), CHIP_STATUS_IO);
    lens[0] /= 4;
    CHECK_STATUS(chip_explain(ex, IMAGES_ENCODED(cbufs, lens, 1), &eo, &e), CHIP_STATUS_IMAGE);
    CHECK_STATUS(chip_explain(ex, IMAGES_ENCODED(cbufs, NULL, 1), &eo, &e), CHIP_STATUS_NULL_POINTER);
    cbufs[1] = NULL;
    CHECK_STATUS(chip_explain(ex, IMAGES_ENCODED(cbufs, lens, 2), &eo, &e), CHIP_STATUS_NULL_POINTER);
    CHECK_ERROR_MENTIONS("data[1]"); /* named as the chip_images field the wrapper fills */
    eo.refined = 1; /* needs two layers */
    CHECK_STATUS(chip_explain(ex, IMAGES_FILES(images, 1), &eo, &e), CHIP_STATUS_INVALID_ARGUMENT);
    eo.refined = 0;
    eo.threshold = NAN;
    CHECK_STATUS(chip_explain(ex, IMAGES_FILES(images, 1), &eo, &e), CHIP_STATUS_INVALID_ARGUMENT);
    REQUIRE_OK(chip_explain_options_default(&eo));
    eo.struct_size = 3;
    CHECK_STATUS(chip_explain(ex, IMAGES_FILES(images, 1), &eo, &e), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(chip_explain_options_default(&eo), CHIP_STATUS_INVALID_ARGUMENT);
    eo.struct_size = sizeof eo;
    REQUIRE_OK(chip_explain_options_default(&eo));
    eo.class_count = 1;
    CHECK_STATUS(chip_explain(ex, IMAGES_FILES(images, 1), &eo, &e), CHIP_STATUS_NULL_POINTER);
    {
        size_t unsolved = 999;
        for (j = 0; j < n_classes; j++)
            if (classes[j] == unsolved) unsolved = 998;
        eo.classes = &unsolved;
        CHECK_STATUS(chip_explain(ex, IMAGES_FILES(images, 1), &eo, &e), CHIP_STATUS_INVALID_ARGUMENT);
        CHECK_ERROR_MENTIONS("not solved");
        unsolved = 1000;
        CHECK_STATUS(chip_explain(ex, IMAGES_FILES(images, 1), &eo, &e), CHIP_STATUS_INVALID_ARGUMENT);
    }
    CHECK(e == NULL);

    /* Explicit classes, maps at the input size, the tensor's default sizes. */
    REQUIRE_OK(chip_explain_options_default(&eo));
    eo.classes = classes;
    eo.class_count = n_classes;
    eo.original_size = 0;
    REQUIRE_OK(chip_explain(ex, IMAGES_TENSOR(tensor, per, 1, NULL), &eo, &e));
    REQUIRE_OK(chip_explanation_class_count(e, 0, &n));
    CHECK(n == n_classes);
    for (j = 0; j < n_classes; j++) {
        size_t cls = 0;
        float p = 0;
        chip_size ms = {0, 0}, size = {0, 0};
        REQUIRE_OK(chip_explanation_class(e, 0, j, &cls, &p));
        CHECK(cls == classes[j]);
        REQUIRE_OK(chip_explanation_map_size(e, 0, j, 0, &ms));
        CHECK(ms.width == 224 && ms.height == 224);
        REQUIRE_OK(chip_explanation_image_size(e, 0, &size));
        CHECK(size.width == 224 && size.height == 224);
    }
    chip_explanation_free(e);
    e = NULL;

    /* top_k = 3 lists the three most probable classes in order. */
    REQUIRE_OK(chip_explain_options_default(&eo));
    eo.top_k = k3;
    REQUIRE_OK(chip_explain(ex, IMAGES_FILES(images, 1), &eo, &e));
    REQUIRE_OK(chip_explanation_class_count(e, 0, &n));
    CHECK(n == k3);
    for (j = 0; j < k3 && j < n; j++) {
        size_t a = 0, b = 0;
        float pa = 0, pb = 0;
        REQUIRE_OK(chip_explanation_class(e, 0, j, &a, &pa));
        REQUIRE_OK(chip_explanation_top(e, 0, j, &b, &pb));
        CHECK(a == b && pa == pb);
    }
    chip_explanation_free(e);

    for (i = 0; i < 3; i++) free(bufs[i]);
    free(tensor);
    chip_explanation_free(e_files);
    chip_explanation_free(e_enc);
    chip_explanation_free(e_tensor);
    chip_explainer_free(ex);
}

/* Two fitted layers: Refined CHIP is the point-wise product of the two layers' maps. */
static void test_refined(const chip_model *m, const chip_layer_fit *fit, const size_t *classes, size_t n_classes) {
    chip_fit_options fo = {.struct_size = sizeof(chip_fit_options)};
    chip_layer_fit *shallow = NULL;
    chip_explainer *ex = NULL;
    chip_explanation *e = NULL;
    chip_explain_options eo = {.struct_size = sizeof(chip_explain_options)};
    const chip_layer_fit *fits[2];
    size_t count = 0, i, n, len = 0, layers = 0, shallow_index = (size_t)-1, self_index = (size_t)-1;
    char name[256];
    float *a, *b, *r;
    chip_box box;

    REQUIRE_OK(chip_model_layer_count(m, &count));
    /* The first layer whose spatial size is 28: a shallow layer of the network. */
    for (i = 0; i < count; i++) {
        size_t h = 0;
        REQUIRE_OK(chip_model_layer_info(m, i, name, sizeof name, &n, NULL, &h, NULL));
        if (strcmp(name, layer) == 0) self_index = i;
        if (h == 28 && shallow_index == (size_t)-1) shallow_index = i;
    }
    CHECK(shallow_index < self_index);
    REQUIRE_OK(chip_model_layer_info(m, shallow_index, name, sizeof name, &n, NULL, NULL, NULL));
    REQUIRE_OK(chip_fit_options_default(&fo));
    fo.gates = 8;
    fo.classes = classes;
    fo.class_count = n_classes;
    REQUIRE_OK(chip_fit_layer(m, name, IMAGES_FILES(images, 2), &fo, &shallow));
    /* Given deep first: the refined pair is still (shallow, deep) by graph order. */
    fits[0] = fit;
    fits[1] = shallow;
    REQUIRE_OK(chip_explainer_new(m, fits, 2, &ex));
    REQUIRE_OK(chip_explain_options_default(&eo));
    eo.refined = 1;
    eo.classes = classes;
    eo.class_count = 1;
    REQUIRE_OK(chip_explain(ex, IMAGES_FILES(images, 1), &eo, &e));
    REQUIRE_OK(chip_explanation_layer_count(e, &layers));
    CHECK(layers == 2);
    REQUIRE_OK(chip_explanation_map(e, 0, 0, 0, NULL, 0, &len));
    a = (float *)malloc(len * sizeof(float));
    b = (float *)malloc(len * sizeof(float));
    r = (float *)malloc(len * sizeof(float));
    REQUIRE_OK(chip_explanation_map(e, 0, 0, 0, a, len, &n));
    REQUIRE_OK(chip_explanation_map(e, 0, 0, 1, b, len, &n));
    REQUIRE_OK(chip_explanation_map(e, 0, 0, CHIP_REFINED, r, len, &n));
    CHECK(n == len);
    for (i = 0; i < len; i++) {
        float want = a[i] * b[i];
        if (!(fabsf(r[i] - want) <= 1e-5f * (fabsf(want) > 1 ? fabsf(want) : 1))) {
            CHECK(!"refined map is not the product of the two layer maps");
            break;
        }
    }
    {
        chip_size ms = {0, 0};
        chip_box ref;
        REQUIRE_OK(chip_explanation_map_size(e, 0, 0, CHIP_REFINED, &ms));
        REQUIRE_OK(chip_explanation_box(e, 0, 0, CHIP_REFINED, &box));
        reference_box(r, ms.width, ms.height, eo.threshold, &ref);
        CHECK(memcmp(&box, &ref, sizeof box) == 0); /* no box too: all -1 in both */
    }
    free(a);
    free(b);
    free(r);
    chip_explanation_free(e);
    chip_explainer_free(ex);
    chip_layer_fit_free(shallow);
}

/* ----------------------------------------------------------------------------------------------- */

/* The effective spec as JSON text (malloc'd), through a size query and a too-small buffer first. */
static char *describe_spec(const chip_model *m) {
    size_t need = 0, n = 0;
    char small[4] = {'x', 0, 0, 0}, *buf;
    REQUIRE_OK(chip_model_preprocess(m, NULL, 0, &need));
    CHECK(need > 100);
    CHECK_STATUS(chip_model_preprocess(m, small, sizeof small, &n), CHIP_STATUS_BUFFER_TOO_SMALL);
    CHECK(n == need && small[0] == 'x');
    buf = (char *)malloc(need);
    REQUIRE_OK(chip_model_preprocess(m, buf, need, &n));
    CHECK(n == need && strlen(buf) + 1 == need);
    return buf;
}

/* A preprocessing spec through chip_model_options.preprocess: ImageNet's 0-1 scale, mean and std
 * instead of the sidecar's (x - 127) / 128. The spec's tensor equals the sidecar's tensor
 * re-normalised here by hand; the probabilities move; a fit made under the sidecar is refused; an
 * explanation of the file equals one of the hand-normalised tensor. Bad specs fail the load, and an
 * older caller's struct without the field loads without it. */
static void test_preprocess_spec(const chip_model *m) {
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    const char *spec = "{\"scale\": 0.00392156862745098, \"mean\": [0.485, 0.456, 0.406], "
                       "\"std\": [0.229, 0.224, 0.225]}";
    chip_model_options mo = {.struct_size = sizeof(chip_model_options)};
    chip_model *given = NULL, *bad = NULL;
    chip_fit_options fo = {.struct_size = sizeof(chip_fit_options)};
    chip_layer_fit *sidecar_fit = NULL, *fit = NULL;
    chip_explainer *ex = NULL;
    chip_explanation *e_file = NULL, *e_tensor = NULL, *e_bad = (chip_explanation *)&mo;
    const chip_layer_fit *fits[1];
    size_t per = 0, n = 0, i, c, top = 0;
    chip_size sizes[2];
    float *side, *hand, *mine, p_side[1000], p_given[1000], p_file[1000], p_tensor[1000];
    float max_tensor = 0, max_moved = 0, max_expl = 0;
    char *text;

    REQUIRE_OK(chip_model_options_default(&mo));
    CHECK(mo.preprocess == NULL);
    mo.preprocess = spec;
    REQUIRE_OK(chip_model_load(model_path, &mo, &given));

    /* Where each value came from: the sidecar for the default model, the given spec's keys here. */
    text = describe_spec(m);
    CHECK(strstr(text, "\"sources\":{") && strstr(text, "\"fingerprint\":\"") && strstr(text, "\"spec\":{"));
    CHECK(strstr(text, "\"mean\":\"sidecar\"") && strstr(text, "\"std\":\"sidecar\""));
    free(text);
    text = describe_spec(given);
    CHECK(strstr(text, "\"mean\":\"given\"") && strstr(text, "\"std\":\"given\"") && strstr(text, "\"scale\":\"given\""));
    CHECK(strstr(text, "\"interpolation\":\"sidecar\"") && strstr(text, "\"input_size\":\"sidecar\""));
    CHECK(strstr(text, "0.485") && strstr(text, "0.229"));
    free(text);
    CHECK_STATUS(chip_model_preprocess(NULL, NULL, 0, &n), CHIP_STATUS_NULL_POINTER);

    /* The tensors: the sidecar's x = (p - 127) / 128 turned back into pixels p, then (p / 255 - mean) / std. */
    side = prepare(m, 2, sizes);
    mine = prepare(given, 2, sizes);
    REQUIRE_OK(chip_model_preprocess_file(m, images[0], NULL, 0, &per, NULL));
    hand = (float *)malloc(2 * per * sizeof(float));
    for (i = 0; i < 2 * per; i++) {
        c = (i % per) / (per / 3);
        hand[i] = ((side[i] * 128.0f + 127.0f) / 255.0f - mean[c]) / std[c];
        if (fabsf(hand[i] - mine[i]) > max_tensor) max_tensor = fabsf(hand[i] - mine[i]);
    }
    CHECK(max_tensor < 1e-4f);
    REQUIRE_OK(chip_model_predict(m, side, per, 1, p_side, 1000, &n));
    REQUIRE_OK(chip_model_predict(given, hand, per, 1, p_given, 1000, &n));
    for (i = 0; i < 1000; i++) {
        if (fabsf(p_side[i] - p_given[i]) > max_moved) max_moved = fabsf(p_side[i] - p_given[i]);
        if (p_given[i] > p_given[top]) top = i;
    }
    CHECK(max_moved > 1e-3f);

    /* A fit made under the sidecar's preprocessing is refused under the given spec. */
    REQUIRE_OK(chip_fit_options_default(&fo));
    fo.gates = 8;
    fo.mosaics = 0;
    fo.classes = &top;
    fo.class_count = 1;
    REQUIRE_OK(chip_fit_layer(m, layer, IMAGES_TENSOR(side, 2 * per, 2, NULL), &fo, &sidecar_fit));
    fits[0] = sidecar_fit;
    CHECK_STATUS(chip_explainer_new(given, fits, 1, &ex), CHIP_STATUS_FIT_MISMATCH);
    CHECK_ERROR_MENTIONS("another preprocessing");
    CHECK_ERROR_MENTIONS("mean");
    CHECK(ex == NULL);

    /* Under the spec: the file and the hand-normalised tensor give the same probabilities. */
    REQUIRE_OK(chip_fit_layer(given, layer, IMAGES_FILES(images, 2), &fo, &fit));
    fits[0] = fit;
    REQUIRE_OK(chip_explainer_new(given, fits, 1, &ex));
    REQUIRE_OK(chip_explain(ex, IMAGES_FILES(images, 1), NULL, &e_file));
    REQUIRE_OK(chip_explain(ex, IMAGES_TENSOR(hand, per, 1, sizes), NULL, &e_tensor));
    REQUIRE_OK(chip_explanation_probabilities(e_file, 0, p_file, 1000, &n));
    REQUIRE_OK(chip_explanation_probabilities(e_tensor, 0, p_tensor, 1000, &n));
    for (i = 0; i < 1000; i++) {
        if (fabsf(p_file[i] - p_tensor[i]) > max_expl) max_expl = fabsf(p_file[i] - p_tensor[i]);
    }
    CHECK(max_expl < 1e-4f);
    /* The tensor's length is checked against the library's NCHW layout. */
    CHECK_STATUS(chip_explain(ex, IMAGES_TENSOR(hand, per + 1, 1, NULL), NULL, &e_bad), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("images->tensor holds 150529 floats, but 1 images of 3x224x224 need 150528");
    CHECK(e_bad == NULL);

    /* Bad specs: the message names the option and the key. */
    mo.preprocess = "{\"mean\": 0.5, \"channels\": \"RGB\"}";
    CHECK_STATUS(chip_model_load(model_path, &mo, &bad), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("chip_model_options.preprocess");
    CHECK_ERROR_MENTIONS("unknown key 'channels'");
    CHECK_ERROR_MENTIONS("channel_order");
    CHECK(bad == NULL);
    mo.preprocess = "{\"resize\": \"squash\"}";
    CHECK_STATUS(chip_model_load(model_path, &mo, &bad), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("'resize'");
    mo.preprocess = "{\"mean\": ";
    CHECK_STATUS(chip_model_load(model_path, &mo, &bad), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("invalid JSON");

    /* An older caller's struct ends before `preprocess`: what lies there is not read. */
    mo.struct_size = offsetof(chip_model_options, preprocess);
    mo.preprocess = "{\"no_such_key\": 1}";
    REQUIRE_OK(chip_model_load(model_path, &mo, &bad));
    text = describe_spec(bad);
    CHECK(strstr(text, "\"mean\":\"sidecar\"") != NULL);
    free(text);
    chip_model_free(bad);

    chip_explanation_free(e_file);
    chip_explanation_free(e_tensor);
    chip_explainer_free(ex);
    chip_layer_fit_free(fit);
    chip_layer_fit_free(sidecar_fit);
    chip_model_free(given);
    free(side);
    free(mine);
    free(hand);
}

int main(int argc, char **argv) {
    chip_model *m = NULL;
    chip_layer_fit *fit;
    size_t top1[3], classes[3], n_classes = 0, i, j;

    if (argc < 7) {
        fprintf(stderr, "usage: %s <model.onnx> <layer> <scratch dir> <image> <image> <image> [...]\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    layer = argv[2];
    scratch = argv[3];
    images = (const char **)(argv + 4);
    n_images = (size_t)(argc - 4);

    test_version_and_status();
    test_options();
    test_model_errors();
    REQUIRE_OK(chip_model_load(model_path, NULL, &m));
    CHECK(strcmp(chip_last_error(), "") == 0);
    test_model_queries(m);
    test_preprocess_and_predict(m, top1);
    /* Fit the distinct top-1 classes of the first three images. */
    for (i = 0; i < 3; i++) {
        int seen = 0;
        for (j = 0; j < n_classes; j++) seen |= classes[j] == top1[i];
        if (!seen) classes[n_classes++] = top1[i];
    }
    fit = test_fit(m, classes, n_classes);
    test_fit_files(m, fit);
    test_explain(m, fit, top1, classes, n_classes);
    test_refined(m, fit, classes, n_classes);
    test_preprocess_spec(m);
    chip_layer_fit_free(fit);
    chip_model_free(m);
    return check_report("test_api");
}
