/*
 * libchip from C: load a model, fit one layer on a few photos, save and reload the fit, explain a
 * photo, print its top classes, the box and a summary of the map.
 *
 * usage: chip_example_c <model.onnx> <layer> <fit file to write> <photo to explain> <fit photo>...
 *
 * The recipe every language example follows, so their outputs can be compared line by line: the
 * classes fitted are the 3 most probable classes of the photo to explain; gates 32, seed 0, other
 * fit options default; explain with top_k 3 and maps at the original size; the map printed is the
 * top-1 class's; its sum is accumulated in double in row-major order.
 */
#include "chip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRY(call)                                                                                  \
    do {                                                                                           \
        chip_status s_ = (call);                                                                   \
        if (s_ != CHIP_STATUS_OK) {                                                                \
            fprintf(stderr, "%s failed: %s: %s\n", #call, chip_status_str(s_), chip_last_error()); \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv) {
    chip_model *model = NULL;
    chip_layer_fit *fit = NULL, *loaded = NULL;
    chip_explainer *explainer = NULL;
    chip_explanation *ex = NULL;
    /* Options structs carry their size; the _default functions write within it. */
    chip_fit_options fo = {.struct_size = sizeof(chip_fit_options)};
    chip_explain_options eo = {.struct_size = sizeof(chip_explain_options)};
    chip_images fit_images, photo;
    chip_size input, map_size;
    size_t classes = 0, per = 0, n = 0, top[3], i, k, len = 0, mw, mh;
    float *tensor, *probs, *map;
    const chip_layer_fit *fits[1];
    char label[256];
    chip_box box;
    double sum = 0;
    float max = 0;

    if (argc < 6) {
        fprintf(stderr, "usage: %s <model.onnx> <layer> <fit file to write> <photo to explain> <fit photo>...\n", argv[0]);
        return 2;
    }
    printf("libchip %s\n", chip_version());
    TRY(chip_model_load(argv[1], NULL, &model));
    TRY(chip_model_class_count(model, &classes));
    TRY(chip_model_input_size(model, &input));
    printf("model: %zu classes, input %ux%u\n", classes, (unsigned)input.width, (unsigned)input.height);

    /* The classes to fit: the photo's three most probable. */
    TRY(chip_model_preprocess_file(model, argv[4], NULL, 0, &per, NULL));
    tensor = (float *)malloc(per * sizeof(float));
    probs = (float *)malloc(classes * sizeof(float));
    TRY(chip_model_preprocess_file(model, argv[4], tensor, per, &n, NULL));
    TRY(chip_model_predict(model, tensor, per, 1, probs, classes, &n));
    for (k = 0; k < 3; k++) {
        size_t best = (size_t)-1;
        for (i = 0; i < classes; i++) {
            int taken = 0;
            size_t j;
            for (j = 0; j < k; j++) taken |= top[j] == i;
            if (!taken && (best == (size_t)-1 || probs[i] > probs[best])) best = i;
        }
        top[k] = best;
    }

    TRY(chip_fit_options_default(&fo));
    fo.gates = 32;
    fo.seed = 0;
    fo.classes = top;
    fo.class_count = 3;
    /* One descriptor type for every image source: files here, encoded bytes or a tensor elsewhere. */
    memset(&fit_images, 0, sizeof fit_images);
    fit_images.struct_size = sizeof fit_images;
    fit_images.kind = CHIP_IMAGES_FILES;
    fit_images.count = (size_t)(argc - 5);
    fit_images.paths = (const char *const *)(argv + 5);
    TRY(chip_fit_layer(model, argv[2], &fit_images, &fo, &fit));
    TRY(chip_layer_fit_save(fit, argv[3]));
    chip_layer_fit_free(fit);
    TRY(chip_layer_fit_load(argv[3], &loaded));
    fits[0] = loaded;
    TRY(chip_explainer_new(model, fits, 1, &explainer));

    TRY(chip_explain_options_default(&eo));
    eo.top_k = 3;
    memset(&photo, 0, sizeof photo);
    photo.struct_size = sizeof photo;
    photo.kind = CHIP_IMAGES_FILES;
    photo.count = 1;
    photo.paths = (const char *const *)(argv + 4);
    TRY(chip_explain(explainer, &photo, &eo, &ex));
    for (k = 0; k < 3; k++) {
        size_t c = 0;
        float p = 0;
        TRY(chip_explanation_class(ex, 0, k, &c, &p));
        TRY(chip_model_class_label(model, c, label, sizeof label, NULL));
        printf("top%zu: %zu %s %.6f\n", k + 1, c, label, p);
    }
    /* No box is all corners -1. */
    TRY(chip_explanation_box(ex, 0, 0, 0, &box));
    if (box.x1 >= 0)
        printf("box: %d %d %d %d\n", (int)box.x1, (int)box.y1, (int)box.x2, (int)box.y2);
    else
        printf("box: none\n");
    TRY(chip_explanation_map_size(ex, 0, 0, 0, &map_size));
    mw = map_size.width;
    mh = map_size.height;
    TRY(chip_explanation_map(ex, 0, 0, 0, NULL, 0, &len));
    map = (float *)malloc(len * sizeof(float));
    TRY(chip_explanation_map(ex, 0, 0, 0, map, len, &len));
    for (i = 0; i < len; i++) {
        sum += map[i];
        if (map[i] > max) max = map[i];
    }
    printf("map: %zux%zu sum %.6e max %.6e center %.6e\n", mw, mh, sum, max, map[(mh / 2) * mw + mw / 2]);

    free(map);
    free(probs);
    free(tensor);
    chip_explanation_free(ex);
    chip_explainer_free(explainer);
    chip_layer_fit_free(loaded);
    chip_model_free(model);
    return 0;
}
