// libchip from C++ (chip.hpp): the same recipe and output as examples/c/main.c.
//
// usage: chip_example_cpp <model.onnx> <layer> <fit file to write> <photo to explain> <fit photo>...
#include "chip.hpp"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

int main(int argc, char **argv) try {
    if (argc < 6) {
        std::fprintf(stderr, "usage: %s <model.onnx> <layer> <fit file to write> <photo to explain> <fit photo>...\n", argv[0]);
        return 2;
    }
    const std::string photo = argv[4];
    std::printf("libchip %s\n", chip::version().c_str());
    chip::Model model = chip::Model::load(argv[1]);
    chip::Size input = model.input_size();
    std::printf("model: %zu classes, input %ux%u\n", model.class_count(), unsigned(input.width), unsigned(input.height));

    // The classes to fit: the photo's three most probable (ties: the lower class id).
    std::vector<float> probs = model.predict(model.preprocess_file(photo).data, 1);
    std::vector<size_t> order(probs.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return probs[a] > probs[b]; });
    std::vector<size_t> top(order.begin(), order.begin() + 3);

    chip::FitOptions fo;
    fo.gates = 32;
    fo.seed = 0;
    fo.classes = top.data();
    fo.class_count = top.size();
    std::vector<std::string> fit_photos(argv + 5, argv + argc);
    chip::LayerFit::fit(model, argv[2], fit_photos, fo).save(argv[3]);
    chip::LayerFit fit = chip::LayerFit::load(argv[3]);
    chip::Explainer explainer(model, fit);

    chip::ExplainOptions eo;
    eo.top_k = 3;
    chip::Explanation ex = explainer.explain_files({photo}, eo);
    for (size_t k = 0; k < 3; ++k) {
        auto [c, p] = ex.explained_class(0, k);
        std::printf("top%zu: %zu %s %.6f\n", k + 1, c, model.class_label(c).c_str(), p);
    }
    chip::Box box = ex.box(0, 0, 0);
    if (chip::found(box))
        std::printf("box: %d %d %d %d\n", int(box.x1), int(box.y1), int(box.x2), int(box.y2));
    else
        std::printf("box: none\n");
    chip::Map map = ex.map(0, 0, 0);
    double sum = 0;
    float max = 0;
    for (float v : map.data) {
        sum += v;
        max = std::max(max, v);
    }
    std::printf("map: %zux%zu sum %.6e max %.6e center %.6e\n", map.width, map.height, sum, max,
                map.data[(map.height / 2) * map.width + map.width / 2]);
    return 0;
} catch (const chip::Error &e) {
    std::fprintf(stderr, "error (%s): %s\n", chip_status_str(e.status()), e.what());
    return 1;
}
