// chip.hpp: errors become chip::Error with the status and message, callbacks can cancel and their
// exceptions come back to the caller, results equal the C API's.
//
// usage: test_hpp <model.onnx> <layer> <scratch dir> <image> <image> [...]
#include "chip.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

static int failures = 0;
#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

template <typename F>
static chip_status status_of(F f) {
    try {
        f();
    } catch (const chip::Error &e) {
        CHECK(std::strlen(e.what()) > 0);
        return e.status();
    }
    return CHIP_STATUS_OK;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        std::fprintf(stderr, "usage: %s <model.onnx> <layer> <scratch dir> <image> <image> [...]\n", argv[0]);
        return 2;
    }
    const std::string model_path = argv[1], layer = argv[2], scratch = argv[3];
    const std::vector<std::string> images(argv + 4, argv + argc);

    CHECK(chip::version() == CHIP_VERSION_STRING);
    CHECK(status_of([&] { chip::Model::load(scratch + "/missing.onnx"); }) == CHIP_STATUS_IO);
    CHECK(status_of([&] { chip::Model::from_bytes({1, 2, 3}); }) == CHIP_STATUS_MODEL);
    try {
        chip::Model::load(scratch + "/missing.onnx");
    } catch (const chip::Error &e) {
        CHECK(std::string(e.what()).find("missing.onnx") != std::string::npos);
    }

    chip::Model model = chip::Model::load(model_path);
    CHECK(model.class_count() == 1000);
    chip::Size input = model.input_size();
    CHECK(input.width == 224 && input.height == 224);
    CHECK(model.class_label(0).find("tench") != std::string::npos);
    CHECK(status_of([&] { model.class_label(1000); }) == CHIP_STATUS_INVALID_ARGUMENT);
    auto layers = model.layers();
    CHECK(std::any_of(layers.begin(), layers.end(), [&](const chip::LayerInfo &l) { return l.name == layer; }));

    chip::Prepared t = model.preprocess_file(images[0]);
    CHECK(t.data.size() == 3 * 224 * 224 && t.size.width > 0);
    std::vector<float> probs = model.predict(t.data, 1);
    size_t top1 = size_t(std::max_element(probs.begin(), probs.end()) - probs.begin());

    chip::FitOptions fo;
    fo.gates = 16;
    std::vector<size_t> classes{top1};
    fo.classes = classes.data();
    fo.class_count = classes.size();
    const std::vector<std::string> fit_images(images.begin(), images.begin() + 2);

    // Cancel by returning false.
    size_t calls = 0;
    fo.on_progress = [&](chip_progress_kind, size_t, size_t) { return ++calls < 2; };
    CHECK(status_of([&] { chip::LayerFit::fit(model, layer, fit_images, fo); }) == CHIP_STATUS_CANCELLED);
    CHECK(calls == 2);
    // An exception thrown by the callback reaches the caller unchanged.
    fo.on_progress = [&](chip_progress_kind, size_t, size_t) -> bool { throw std::logic_error("stop here"); };
    bool caught = false;
    try {
        chip::LayerFit::fit(model, layer, fit_images, fo);
    } catch (const std::logic_error &e) {
        caught = std::string(e.what()) == "stop here";
    }
    CHECK(caught);
    CHECK(status_of([&] { chip::LayerFit::fit(model, "no_such_layer", fit_images, fo); }) == CHIP_STATUS_UNKNOWN_LAYER);

    fo.on_progress = [&](chip_progress_kind, size_t done, size_t total) { return done <= total; };
    chip::LayerFit fit = chip::LayerFit::fit(model, layer, fit_images, fo);
    CHECK(fit.layer_name() == layer);
    CHECK(fit.class_count() == 1000);
    CHECK(fit.weights_row(top1).size() == fit.channel_count());
    const std::string path = scratch + "/hpp.chip";
    fit.save(path);
    chip::LayerFit loaded = chip::LayerFit::load(path);
    CHECK(loaded.weights_row(top1) == fit.weights_row(top1));
    CHECK(status_of([&] { chip::LayerFit::load(images[0]); }) == CHIP_STATUS_FIT_FILE);

    chip::Explainer explainer(model, loaded);
    CHECK(explainer.layer_names() == std::vector<std::string>{layer});
    chip::Explanation e = explainer.explain_files({images[0]});
    CHECK(e.image_count() == 1);
    CHECK(e.top(0).at(0).first == top1);
    CHECK(e.explained_class(0, 0).first == top1);
    chip::Map m = e.map(0, 0, 0);
    CHECK(m.width == t.size.width && m.height == t.size.height && m.data.size() == m.width * m.height);
    chip::Box box = e.box(0, 0, 0);
    chip::Box box2 = chip::localize(m.data, m.width, m.height, chip::ExplainOptions().threshold);
    CHECK(chip::found(box) && chip::found(box2));
    CHECK(chip::iou(box, box2) == 1.0);
    // No box: all corners -1, IoU 0 with any box.
    chip::Box none = chip::localize(std::vector<float>(m.data.size(), 0.0f), m.width, m.height, 0.5f);
    CHECK(!chip::found(none) && none.x1 == -1 && none.y2 == -1);
    CHECK(chip::iou(box, none) == 0.0);
    CHECK(status_of([&] { e.map(0, 0, CHIP_REFINED); }) == CHIP_STATUS_INVALID_ARGUMENT);
    CHECK(status_of([&] { e.map(1, 0, 0); }) == CHIP_STATUS_INVALID_ARGUMENT);

    // The same image through the tensor and encoded paths.
    chip::Explanation et = explainer.explain_tensor(t.data, 1, {t.size});
    CHECK(et.map(0, 0, 0).data == m.data);
    std::vector<std::vector<uint8_t>> encoded(1);
    {
        FILE *f = std::fopen(images[0].c_str(), "rb");
        CHECK(f != nullptr);
        int c;
        while (f && (c = std::fgetc(f)) != EOF) encoded[0].push_back(uint8_t(c));
        if (f) std::fclose(f);
    }
    CHECK(explainer.explain_encoded(encoded).map(0, 0, 0).data == m.data);

    // A preprocessing spec as ModelOptions::preprocess: its keys are "given", the tensor follows it
    // (the sidecar's x = (p - 127) / 128 re-normalised by hand to p / 255), the probabilities move.
    const std::string sidecar = model.preprocess();
    CHECK(sidecar.find("\"sources\":{") != std::string::npos && sidecar.find("\"mean\":\"sidecar\"") != std::string::npos);
    chip::ModelOptions mo;
    CHECK(mo.preprocess.empty());
    mo.preprocess = R"({"mean": [0, 0, 0], "std": [255, 255, 255]})";
    chip::Model given = chip::Model::load(model_path, mo);
    const std::string described = given.preprocess();
    CHECK(described.find("\"mean\":\"given\"") != std::string::npos && described.find("\"std\":\"given\"") != std::string::npos);
    CHECK(described.find("\"scale\":\"sidecar\"") != std::string::npos);
    chip::Prepared tg = given.preprocess_file(images[0]);
    CHECK(tg.data.size() == t.data.size());
    float worst = 0;
    for (size_t i = 0; i < t.data.size(); ++i) worst = std::max(worst, std::abs(tg.data[i] - (t.data[i] * 128 + 127) / 255));
    CHECK(worst < 1e-5f);
    std::vector<float> probs_given = given.predict(tg.data, 1);
    float moved_by = 0;
    for (size_t i = 0; i < probs.size(); ++i) moved_by = std::max(moved_by, std::abs(probs[i] - probs_given[i]));
    CHECK(moved_by > 1e-3f);
    // The same spec through from_bytes, where there is no sidecar.
    std::vector<uint8_t> model_bytes;
    {
        FILE *f = std::fopen(model_path.c_str(), "rb");
        CHECK(f != nullptr);
        int c;
        while (f && (c = std::fgetc(f)) != EOF) model_bytes.push_back(uint8_t(c));
        if (f) std::fclose(f);
    }
    chip::Model from_bytes = chip::Model::from_bytes(model_bytes, mo);
    CHECK(from_bytes.preprocess().find("\"mean\":\"given\"") != std::string::npos);
    CHECK(chip::Model::from_bytes(model_bytes).preprocess().find("\"mean\":\"assumed\"") != std::string::npos);
    // An unknown key: CHIP_STATUS_INVALID_ARGUMENT naming it.
    mo.preprocess = R"({"mean": 0.5, "colour": "RGB"})";
    std::string message;
    try {
        chip::Model::load(model_path, mo);
    } catch (const chip::Error &err) {
        CHECK(err.status() == CHIP_STATUS_INVALID_ARGUMENT);
        message = err.what();
    }
    CHECK(message.find("unknown key 'colour'") != std::string::npos);

    // Moved-from objects are empty; the explainer outlives the model it was made from.
    chip::Model moved = std::move(model);
    CHECK(model.get() == nullptr && moved.get() != nullptr);
    { chip::Model gone = std::move(moved); }
    CHECK(explainer.explain_files({images[1]}).image_count() == 1);

    if (failures) {
        std::fprintf(stderr, "test_hpp: %d check(s) failed\n", failures);
        return 1;
    }
    std::printf("test_hpp: all checks passed\n");
    return 0;
}
