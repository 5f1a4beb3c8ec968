/*
 * libchip C++ interface: header-only RAII wrappers over chip.h. Needs C++17.
 *
 * Every failing call throws chip::Error (status() gives the chip_status, what() the message).
 * Thread safety follows chip.h: Model and Explainer may be used from many threads at once; LayerFit
 * and Explanation are immutable. Objects are movable, not copyable.
 */
#ifndef CHIP_HPP
#define CHIP_HPP

#include "chip.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace chip {

class Error : public std::runtime_error {
public:
    Error(chip_status status, const std::string &message)
        : std::runtime_error(message.empty() ? std::string(chip_status_str(status)) : message), status_(status) {}
    chip_status status() const noexcept { return status_; }

private:
    chip_status status_;
};

namespace detail {

inline void check(chip_status s) {
    if (s != CHIP_STATUS_OK) throw Error(s, chip_last_error());
}

// Calls f(buf, len, &out_len) twice: a size query, then the copy.
template <typename T, typename F>
std::vector<T> fetch(F f) {
    size_t n = 0;
    check(f(static_cast<T *>(nullptr), size_t(0), &n));
    std::vector<T> v(n);
    if (n > 0) check(f(v.data(), n, &n));
    return v;
}

template <typename F>
std::string fetch_string(F f) {
    std::vector<char> v = fetch<char>(f);
    return v.empty() ? std::string() : std::string(v.data());
}

inline std::vector<const char *> c_strings(const std::vector<std::string> &s) {
    std::vector<const char *> out;
    out.reserve(s.size());
    for (const auto &x : s) out.push_back(x.c_str());
    return out;
}

template <typename T, void (*Free)(T *)>
struct Deleter {
    void operator()(T *p) const noexcept { Free(p); }
};

}  // namespace detail

inline std::string version() { return chip_version(); }

/// A size in pixels: width, then height.
using Size = chip_size;

/// A bounding box with inclusive corners; no box is all four corners -1 (see found()).
using Box = chip_box;

/// Whether `b` is a box rather than no box (all corners -1).
inline bool found(const Box &b) { return !(b.x1 == -1 && b.y1 == -1 && b.x2 == -1 && b.y2 == -1); }

/// Box of the largest 8-connected region of {map >= threshold * max}; no box when the map has no
/// positive value.
inline Box localize(const std::vector<float> &map, size_t width, size_t height, float threshold) {
    if (map.size() != width * height) throw Error(CHIP_STATUS_INVALID_ARGUMENT, "map size does not match width x height");
    Box b{};
    detail::check(chip_localize(map.data(), width, height, threshold, &b));
    return b;
}

/// Intersection over union; 0 when either is no box.
inline double iou(const Box &a, const Box &b) {
    double v = 0;
    detail::check(chip_iou(&a, &b, &v));
    return v;
}

// Each options constructor sets struct_size first: the defaults are written within it.
struct ModelOptions : chip_model_options {
    ModelOptions() : chip_model_options() {
        struct_size = sizeof(chip_model_options);
        detail::check(chip_model_options_default(this));
    }
    /// A preprocessing spec as JSON text (the keys of the sidecar `<model>.json`), or empty for none;
    /// it stands for the C field of the same name, which Model::load and Model::from_bytes set from it.
    std::string preprocess;

    /// The C struct with `preprocess` pointing into this object (valid while it lives unchanged).
    chip_model_options c_options() const {
        chip_model_options c = *this;
        c.preprocess = preprocess.empty() ? nullptr : preprocess.c_str();
        return c;
    }
};

struct ExplainOptions : chip_explain_options {
    ExplainOptions() : chip_explain_options() {
        struct_size = sizeof(chip_explain_options);
        detail::check(chip_explain_options_default(this));
    }
};

/// Progress of a fit: return false to cancel (the fit then throws Error with CHIP_STATUS_CANCELLED).
using ProgressFn = std::function<bool(chip_progress_kind kind, size_t done, size_t total)>;

struct FitOptions : chip_fit_options {
    FitOptions() : chip_fit_options() {
        struct_size = sizeof(chip_fit_options);
        detail::check(chip_fit_options_default(this));
    }
    /// Set the progress function instead of the C fields `progress` and `user_data`.
    ProgressFn on_progress;
};

struct LayerInfo {
    std::string name;
    size_t channels = 0;
    size_t height = 0;
    size_t width = 0;
};

/// A preprocessed image: 3 x H x W floats at the model's input size, and its original size.
struct Prepared {
    std::vector<float> data;
    Size size{};
};

class Model {
public:
    static Model load(const std::string &path, const ModelOptions &opts = ModelOptions()) {
        chip_model *m = nullptr;
        const chip_model_options c = opts.c_options();
        detail::check(chip_model_load(path.c_str(), &c, &m));
        return Model(m);
    }
    static Model from_bytes(const std::vector<uint8_t> &bytes, const ModelOptions &opts = ModelOptions()) {
        chip_model *m = nullptr;
        const chip_model_options c = opts.c_options();
        detail::check(chip_model_load_bytes(bytes.data(), bytes.size(), &c, &m));
        return Model(m);
    }

    size_t class_count() const {
        size_t n = 0;
        detail::check(chip_model_class_count(get(), &n));
        return n;
    }
    /// The model's input size.
    Size input_size() const {
        Size s{};
        detail::check(chip_model_input_size(get(), &s));
        return s;
    }
    std::string class_label(size_t c) const {
        return detail::fetch_string([&](char *b, size_t l, size_t *o) { return chip_model_class_label(get(), c, b, l, o); });
    }
    /// The effective preprocessing as JSON: {"spec": {...}, "sources": {key: "given" | "sidecar" |
    /// "graph" | "probe" | "assumed"}, "fingerprint": "..."} (see chip_model_preprocess).
    std::string preprocess() const {
        return detail::fetch_string([&](char *b, size_t l, size_t *o) { return chip_model_preprocess(get(), b, l, o); });
    }
    std::vector<LayerInfo> layers() const {
        size_t n = 0;
        detail::check(chip_model_layer_count(get(), &n));
        std::vector<LayerInfo> out(n);
        for (size_t i = 0; i < n; ++i) {
            LayerInfo &li = out[i];
            li.name = detail::fetch_string([&](char *b, size_t l, size_t *o) {
                return chip_model_layer_info(get(), i, b, l, o, &li.channels, &li.height, &li.width);
            });
        }
        return out;
    }
    /// Class probabilities of n preprocessed images: n x class_count() floats.
    std::vector<float> predict(const std::vector<float> &data, size_t n) const {
        return detail::fetch<float>([&](float *b, size_t l, size_t *o) {
            return chip_model_predict(get(), data.data(), data.size(), n, b, l, o);
        });
    }
    Prepared preprocess_file(const std::string &path) const {
        Prepared p;
        p.data = detail::fetch<float>([&](float *b, size_t l, size_t *o) {
            return chip_model_preprocess_file(get(), path.c_str(), b, l, o, &p.size);
        });
        return p;
    }
    Prepared preprocess_encoded(const std::vector<uint8_t> &bytes) const {
        Prepared p;
        p.data = detail::fetch<float>([&](float *b, size_t l, size_t *o) {
            return chip_model_preprocess_encoded(get(), bytes.data(), bytes.size(), b, l, o, &p.size);
        });
        return p;
    }

    const chip_model *get() const noexcept { return p_.get(); }

private:
    explicit Model(chip_model *m) : p_(m) {}
    std::unique_ptr<chip_model, detail::Deleter<chip_model, chip_model_free>> p_;
};

/// The images of one fit, statistics pass or explanation: files, encoded images or preprocessed
/// tensors, as one chip_images descriptor. The referenced data must outlive the call it is passed to.
class Images {
public:
    static Images files(const std::vector<std::string> &paths) {
        Images i(CHIP_IMAGES_FILES, paths.size());
        i.paths_ = detail::c_strings(paths);
        i.d_.paths = i.paths_.data();
        return i;
    }
    static Images encoded(const std::vector<std::vector<uint8_t>> &images) {
        Images i(CHIP_IMAGES_ENCODED, images.size());
        for (const auto &b : images) {
            i.ptrs_.push_back(b.data());
            i.lens_.push_back(b.size());
        }
        i.d_.data = i.ptrs_.data();
        i.d_.lens = i.lens_.data();
        return i;
    }
    /// n preprocessed images (n x 3 x H x W floats); `sizes` holds their n original sizes, or is
    /// empty for the input size.
    static Images tensor(const std::vector<float> &data, size_t n, const std::vector<Size> &sizes = {}) {
        if (!sizes.empty() && sizes.size() != n) throw Error(CHIP_STATUS_INVALID_ARGUMENT, "sizes must hold one size per image");
        Images i(CHIP_IMAGES_TENSOR, n);
        i.d_.tensor = data.data();
        i.d_.tensor_len = data.size();
        i.d_.sizes = sizes.empty() ? nullptr : sizes.data();
        return i;
    }
    const chip_images *get() const noexcept { return &d_; }
    // The descriptor points into this object's vectors: moves keep their buffers, copies would not.
    Images(Images &&) = default;
    Images(const Images &) = delete;
    Images &operator=(const Images &) = delete;

private:
    Images(chip_images_kind kind, size_t count) : d_() {
        d_.struct_size = sizeof(chip_images);
        d_.kind = kind;
        d_.count = count;
    }
    chip_images d_;
    std::vector<const char *> paths_;
    std::vector<const uint8_t *> ptrs_;
    std::vector<size_t> lens_;
};

class LayerFit {
public:
    /// Fits `layer` on `images` (chip_fit_layer).
    static LayerFit fit(const Model &model, const std::string &layer, const Images &images,
                        const FitOptions &opts = FitOptions()) {
        return run(opts, [&](const chip_fit_options *o, chip_layer_fit **out) {
            return chip_fit_layer(model.get(), layer.c_str(), images.get(), o, out);
        });
    }
    /// Fits `layer` on image files.
    static LayerFit fit(const Model &model, const std::string &layer, const std::vector<std::string> &paths,
                        const FitOptions &opts = FitOptions()) {
        return fit(model, layer, Images::files(paths), opts);
    }
    /// Fits `layer` on n preprocessed images (n x 3 x H x W floats).
    static LayerFit fit_tensor(const Model &model, const std::string &layer, const std::vector<float> &data, size_t n,
                               const FitOptions &opts = FitOptions()) {
        return fit(model, layer, Images::tensor(data, n), opts);
    }
    static LayerFit load(const std::string &path) {
        chip_layer_fit *f = nullptr;
        detail::check(chip_layer_fit_load(path.c_str(), &f));
        return LayerFit(f);
    }
    void save(const std::string &path) const { detail::check(chip_layer_fit_save(get(), path.c_str())); }

    std::string layer_name() const {
        return detail::fetch_string([&](char *b, size_t l, size_t *o) { return chip_layer_fit_layer_name(get(), b, l, o); });
    }
    size_t channel_count() const {
        size_t n = 0;
        detail::check(chip_layer_fit_channel_count(get(), &n));
        return n;
    }
    size_t class_count() const {
        size_t n = 0;
        detail::check(chip_layer_fit_class_count(get(), &n));
        return n;
    }
    std::vector<float> weights_row(size_t c) const {
        return detail::fetch<float>([&](float *b, size_t l, size_t *o) { return chip_layer_fit_weights_row(get(), c, b, l, o); });
    }

    const chip_layer_fit *get() const noexcept { return p_.get(); }

private:
    explicit LayerFit(chip_layer_fit *f) : p_(f) {}

    struct Trampoline {
        const ProgressFn *fn;
        std::exception_ptr error;
    };
    // Exceptions must not cross libchip: keep the first one, cancel, rethrow after the call.
    static int progress(void *user, chip_progress_kind kind, size_t done, size_t total) {
        auto *t = static_cast<Trampoline *>(user);
        try {
            return (*t->fn)(kind, done, total) ? 0 : 1;
        } catch (...) {
            if (!t->error) t->error = std::current_exception();
            return 1;
        }
    }

    template <typename F>
    static LayerFit run(const FitOptions &opts, F call) {
        chip_fit_options o = opts;
        Trampoline t{&opts.on_progress, nullptr};
        if (opts.on_progress) {
            o.progress = &LayerFit::progress;
            o.user_data = &t;
        }
        chip_layer_fit *f = nullptr;
        chip_status s = call(&o, &f);
        if (t.error) {
            chip_layer_fit_free(f);
            std::rethrow_exception(t.error);
        }
        detail::check(s);
        return LayerFit(f);
    }

    std::unique_ptr<chip_layer_fit, detail::Deleter<chip_layer_fit, chip_layer_fit_free>> p_;
};

/// A map: row-major height x width floats.
struct Map {
    size_t width = 0;
    size_t height = 0;
    std::vector<float> data;
};

/// The result of one explain call. Layer index CHIP_REFINED selects the Refined CHIP map.
class Explanation {
public:
    size_t image_count() const {
        size_t n = 0;
        detail::check(chip_explanation_image_count(get(), &n));
        return n;
    }
    /// The original size of image i.
    Size image_size(size_t i) const {
        Size s{};
        detail::check(chip_explanation_image_size(get(), i, &s));
        return s;
    }
    std::vector<float> probabilities(size_t i) const {
        return detail::fetch<float>([&](float *b, size_t l, size_t *o) { return chip_explanation_probabilities(get(), i, b, l, o); });
    }
    /// (class, probability) by decreasing probability.
    std::vector<std::pair<size_t, float>> top(size_t i) const {
        size_t n = 0;
        detail::check(chip_explanation_top_count(get(), i, &n));
        std::vector<std::pair<size_t, float>> out(n);
        for (size_t r = 0; r < n; ++r) detail::check(chip_explanation_top(get(), i, r, &out[r].first, &out[r].second));
        return out;
    }
    size_t class_count(size_t i) const {
        size_t n = 0;
        detail::check(chip_explanation_class_count(get(), i, &n));
        return n;
    }
    /// Explained class `index` of image i: (class id, probability).
    std::pair<size_t, float> explained_class(size_t i, size_t index) const {
        std::pair<size_t, float> c{};
        detail::check(chip_explanation_class(get(), i, index, &c.first, &c.second));
        return c;
    }
    size_t layer_count() const {
        size_t n = 0;
        detail::check(chip_explanation_layer_count(get(), &n));
        return n;
    }
    Map map(size_t i, size_t index, size_t layer) const {
        Map m;
        Size s{};
        detail::check(chip_explanation_map_size(get(), i, index, layer, &s));
        m.width = s.width;
        m.height = s.height;
        m.data = detail::fetch<float>([&](float *b, size_t l, size_t *o) { return chip_explanation_map(get(), i, index, layer, b, l, o); });
        return m;
    }
    /// The box of a map; no box (all corners -1) when the map has no positive value.
    Box box(size_t i, size_t index, size_t layer) const {
        Box b{};
        detail::check(chip_explanation_box(get(), i, index, layer, &b));
        return b;
    }

    const chip_explanation *get() const noexcept { return p_.get(); }

private:
    friend class Explainer;
    explicit Explanation(chip_explanation *e) : p_(e) {}
    std::unique_ptr<chip_explanation, detail::Deleter<chip_explanation, chip_explanation_free>> p_;
};

class Explainer {
public:
    /// The fits are copied; the model is shared (the Model object may go away first).
    Explainer(const Model &model, const std::vector<const LayerFit *> &fits) {
        std::vector<const chip_layer_fit *> c;
        for (const LayerFit *f : fits) c.push_back(f ? f->get() : nullptr);
        chip_explainer *e = nullptr;
        detail::check(chip_explainer_new(model.get(), c.data(), c.size(), &e));
        p_.reset(e);
    }
    Explainer(const Model &model, const LayerFit &fit) : Explainer(model, std::vector<const LayerFit *>{&fit}) {}

    std::vector<std::string> layer_names() const {
        size_t n = 0;
        detail::check(chip_explainer_layer_count(get(), &n));
        std::vector<std::string> out;
        for (size_t i = 0; i < n; ++i)
            out.push_back(detail::fetch_string([&](char *b, size_t l, size_t *o) { return chip_explainer_layer_name(get(), i, b, l, o); }));
        return out;
    }

    /// Explains `images` (chip_explain).
    Explanation explain(const Images &images, const ExplainOptions &opts = ExplainOptions()) const {
        chip_explanation *e = nullptr;
        detail::check(chip_explain(get(), images.get(), &opts, &e));
        return Explanation(e);
    }
    Explanation explain_files(const std::vector<std::string> &paths, const ExplainOptions &opts = ExplainOptions()) const {
        return explain(Images::files(paths), opts);
    }
    Explanation explain_encoded(const std::vector<std::vector<uint8_t>> &images, const ExplainOptions &opts = ExplainOptions()) const {
        return explain(Images::encoded(images), opts);
    }
    /// n preprocessed images (n x 3 x H x W floats); `sizes` holds their n original sizes, or is
    /// empty for the input size.
    Explanation explain_tensor(const std::vector<float> &data, size_t n, const std::vector<Size> &sizes = {},
                               const ExplainOptions &opts = ExplainOptions()) const {
        return explain(Images::tensor(data, n, sizes), opts);
    }

    const chip_explainer *get() const noexcept { return p_.get(); }

private:
    std::unique_ptr<chip_explainer, detail::Deleter<chip_explainer, chip_explainer_free>> p_;
};

}  // namespace chip

#endif  // CHIP_HPP
