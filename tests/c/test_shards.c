/*
 * Sharded fits through the C API: the statistics of two shards of images, saved, loaded, merged and
 * solved, equal one chip_fit_layer over all the images; shards of another model, layer, gate set,
 * seed, target or mosaic count are refused, each with its own message; a statistics file that was
 * altered is refused.
 *
 * usage: test_shards <model.onnx> <layer> <scratch dir> <image> <image> <image> <image> [...]
 */
#include "check.h"

#include <math.h>
#include <stdint.h>

#define N 4

static const char *scratch;

static char *scratch_path(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", scratch, name);
    return buf;
}

static chip_images files(const char **paths, size_t count) {
    chip_images d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.kind = CHIP_IMAGES_FILES;
    d.count = count;
    d.paths = paths;
    return d;
}

/* Collects the statistics of `images` with `fo` and expects merging them into `into` to fail with a
 * message that mentions `what`. */
static void check_refused(const chip_model *m, const char *layer, const chip_images *images, const chip_fit_options *fo,
                          chip_stats *into, const char *what) {
    chip_stats *other = NULL;
    size_t before = 0, after = 0;
    REQUIRE_OK(chip_collect_stats(m, layer, images, fo, &other));
    REQUIRE_OK(chip_stats_image_count(into, &before));
    CHECK_STATUS(chip_stats_merge(into, other), CHIP_STATUS_FIT_MISMATCH);
    CHECK_ERROR_MENTIONS(what);
    REQUIRE_OK(chip_stats_image_count(into, &after));
    CHECK(before == after); /* a refused merge changes nothing */
    chip_stats_free(other);
}

int main(int argc, char **argv) {
    const char *model_path, *layer;
    const char **paths;
    chip_model *m = NULL, *m2 = NULL;
    chip_layer_fit *fit_all = NULL, *fit_merged = NULL, *fit_bad = NULL;
    chip_stats *sa = NULL, *sb = NULL, *la = NULL, *lb = NULL, *bad = NULL;
    chip_fit_options fo = {.struct_size = sizeof(chip_fit_options)}, other;
    chip_images all, shard_a, shard_b;
    size_t per = 0, n = 0, i, c, k, channels = 0, count = 0, classes[N], model_len = 0;
    float *data, *probs, *ra, *rb;
    double maxdiff = 0, maxabs = 0;
    char name[512], other_layer[512];
    unsigned char *model_bytes, *file_bytes;
    FILE *f;

    if (argc < 4 + N) {
        fprintf(stderr, "usage: %s <model.onnx> <layer> <scratch dir> <image> x%d\n", argv[0], N);
        return 2;
    }
    model_path = argv[1];
    layer = argv[2];
    scratch = argv[3];
    paths = (const char **)(argv + 4);
    REQUIRE_OK(chip_model_load(model_path, NULL, &m));

    /* Fit the images' top-1 classes, so that the compared rows have weights. */
    REQUIRE_OK(chip_model_preprocess_file(m, paths[0], NULL, 0, &per, NULL));
    data = (float *)malloc(N * per * sizeof(float));
    for (i = 0; i < N; i++) REQUIRE_OK(chip_model_preprocess_file(m, paths[i], data + i * per, per, &n, NULL));
    probs = (float *)malloc(N * 1000 * sizeof(float));
    REQUIRE_OK(chip_model_predict(m, data, N * per, N, probs, N * 1000, &n));
    for (i = 0; i < N; i++) {
        classes[i] = 0;
        for (c = 1; c < 1000; c++)
            if (probs[i * 1000 + c] > probs[i * 1000 + classes[i]]) classes[i] = c;
    }
    free(probs);
    free(data);

    REQUIRE_OK(chip_fit_options_default(&fo));
    fo.gates = 16;
    fo.gate_batch = 8;
    fo.image_batch = 3; /* batches that straddle the shards' boundary in the single fit */
    fo.classes = classes;
    fo.class_count = N;
    fo.mosaics = 0; /* mosaics are tiled within a shard, so only without them do shards equal one fit */

    all = files(paths, N);
    shard_a = files(paths, 2);
    shard_b = files(paths + 2, N - 2);
    REQUIRE_OK(chip_fit_layer(m, layer, &all, &fo, &fit_all));

    REQUIRE_OK(chip_collect_stats(m, layer, &shard_a, &fo, &sa));
    REQUIRE_OK(chip_collect_stats(m, layer, &shard_b, &fo, &sb));
    REQUIRE_OK(chip_stats_save(sa, scratch_path("a.stats")));
    REQUIRE_OK(chip_stats_save(sb, scratch_path("b.stats")));
    chip_stats_free(sa);
    chip_stats_free(sb);
    sa = sb = NULL;
    REQUIRE_OK(chip_stats_load(scratch_path("a.stats"), &la));
    REQUIRE_OK(chip_stats_load(scratch_path("b.stats"), &lb));
    REQUIRE_OK(chip_stats_layer_name(la, name, sizeof name, &n));
    CHECK(strcmp(name, layer) == 0);
    REQUIRE_OK(chip_stats_image_count(la, &count));
    CHECK(count == 2);
    REQUIRE_OK(chip_stats_merge(la, lb));
    REQUIRE_OK(chip_stats_image_count(la, &count));
    CHECK(count == N);
    REQUIRE_OK(chip_solve(m, la, &fo, &fit_merged));

    /* W of the merged shards equals W of the single fit. The sums of the statistics are added in
     * another order, so equal means to round-off, far below any weight that matters. */
    REQUIRE_OK(chip_layer_fit_channel_count(fit_all, &channels));
    ra = (float *)malloc(channels * sizeof(float));
    rb = (float *)malloc(channels * sizeof(float));
    for (c = 0; c < 1000; c++) {
        REQUIRE_OK(chip_layer_fit_weights_row(fit_all, c, ra, channels, &n));
        REQUIRE_OK(chip_layer_fit_weights_row(fit_merged, c, rb, channels, &n));
        for (k = 0; k < channels; k++) {
            if (fabs((double)ra[k] - rb[k]) > maxdiff) maxdiff = fabs((double)ra[k] - rb[k]);
            if (fabs(ra[k]) > maxabs) maxabs = fabs(ra[k]);
        }
    }
    printf("merged shards vs one fit: max |dW| %.3g, max |W| %.3g\n", maxdiff, maxabs);
    CHECK(maxabs > 0);
    CHECK(maxdiff <= 1e-6 * maxabs);
    REQUIRE_OK(chip_layer_fit_layer_name(fit_merged, name, sizeof name, &n));
    CHECK(strcmp(name, layer) == 0);

    /* Shards that do not belong together: each refused with what differs. */
    other = fo;
    other.seed = 7;
    check_refused(m, layer, &shard_b, &other, lb, "seed 7");
    other = fo;
    other.gates = 24;
    check_refused(m, layer, &shard_b, &other, lb, "count 24");
    other = fo;
    other.target = CHIP_TARGET_PROBABILITY;
    check_refused(m, layer, &shard_b, &other, lb, "target");
    other = fo;
    other.mosaics = 1;
    check_refused(m, layer, &shard_b, &other, lb, "mosaics");
    REQUIRE_OK(chip_model_layer_info(m, 5, other_layer, sizeof other_layer, &n, NULL, NULL, NULL));
    CHECK(strcmp(other_layer, layer) != 0);
    check_refused(m, other_layer, &shard_b, &fo, lb, "layer");
    /* Another model: the same graph with another doc_string (protobuf field 6 appended), so another
     * fingerprint. */
    model_bytes = read_file(model_path, &model_len);
    /* Room for the three appended bytes below. */
    model_bytes = (unsigned char *)realloc(model_bytes, model_len + 3);
    REQUIRE_OK(model_bytes ? CHIP_STATUS_OK : CHIP_STATUS_INVALID_ARGUMENT);
    model_bytes[model_len++] = 0x32;
    model_bytes[model_len++] = 0x01;
    model_bytes[model_len++] = 'x';
    REQUIRE_OK(chip_model_load_bytes(model_bytes, model_len, NULL, &m2));
    free(model_bytes);
    check_refused(m2, layer, &shard_b, &fo, lb, "another model");
    CHECK_STATUS(chip_solve(m2, la, &fo, &fit_bad), CHIP_STATUS_FIT_MISMATCH);
    CHECK_ERROR_MENTIONS("another model");
    CHECK(fit_bad == NULL);
    /* Solving for another target than the statistics were collected for. */
    other = fo;
    other.target = CHIP_TARGET_LOGIT;
    CHECK_STATUS(chip_solve(m, la, &other, &fit_bad), CHIP_STATUS_FIT_MISMATCH);
    CHECK_ERROR_MENTIONS("target");

    /* Argument errors. */
    CHECK_STATUS(chip_stats_merge(la, la), CHIP_STATUS_INVALID_ARGUMENT);
    CHECK_ERROR_MENTIONS("same statistics");
    CHECK_STATUS(chip_stats_merge(NULL, lb), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_stats_merge(la, NULL), CHIP_STATUS_NULL_POINTER);
    CHECK_STATUS(chip_solve(m, NULL, &fo, &fit_bad), CHIP_STATUS_NULL_POINTER);
    bad = (chip_stats *)&fo; /* any non-NULL value: must be reset on failure */
    CHECK_STATUS(chip_collect_stats(m, layer, NULL, &fo, &bad), CHIP_STATUS_NULL_POINTER);
    CHECK(bad == NULL);
    CHECK_STATUS(chip_collect_stats(m, "no_such_layer", &shard_a, &fo, &bad), CHIP_STATUS_UNKNOWN_LAYER);
    CHECK_STATUS(chip_stats_load(scratch_path("missing.stats"), &bad), CHIP_STATUS_IO);
    CHECK_STATUS(chip_stats_save(la, NULL), CHIP_STATUS_NULL_POINTER);

    /* An altered statistics file is refused by its checksum. */
    file_bytes = read_file(scratch_path("b.stats"), &n);
    file_bytes[n / 2] ^= 0x40;
    f = fopen(scratch_path("altered.stats"), "wb");
    REQUIRE_OK(f && fwrite(file_bytes, 1, n, f) == n ? CHIP_STATUS_OK : CHIP_STATUS_IO);
    fclose(f);
    free(file_bytes);
    CHECK_STATUS(chip_stats_load(scratch_path("altered.stats"), &bad), CHIP_STATUS_FIT_FILE);
    CHECK_ERROR_MENTIONS("checksum");
    CHECK(bad == NULL);

    free(ra);
    free(rb);
    chip_layer_fit_free(fit_all);
    chip_layer_fit_free(fit_merged);
    chip_stats_free(la);
    chip_stats_free(lb);
    chip_stats_free(NULL);
    chip_model_free(m2);
    chip_model_free(m);
    return check_report("test_shards");
}
