package org.libchip;

import com.sun.jna.Memory;
import com.sun.jna.ptr.PointerByReference;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.libchip.ChipLibrary.SizeTByReference;

/**
 * A loaded ONNX image classifier. May be used from many threads at once. Explainers keep their own
 * reference, so a model may be closed while explainers made from it live on.
 */
public final class Model extends NativeHandle {
    private Model(com.sun.jna.Pointer p) {
        super(p, Native.LIB::chip_model_free, "model");
    }

    /** Loads a model file (and its optional {@code <stem>.json} sidecar) with the default options. */
    public static Model load(Path path) {
        return load(path, new ModelOptions());
    }

    public static Model load(Path path, ModelOptions options) {
        Memory[] keep = new Memory[2];
        ChipLibrary.CModelOptions o = options.toC(keep);
        PointerByReference out = new PointerByReference();
        Native.check(Native.LIB.chip_model_load(path.toString(), o, out));
        java.lang.ref.Reference.reachabilityFence(keep);
        return new Model(out.getValue());
    }

    /**
     * Loads a model from memory. There is no sidecar: the preprocessing is the options' spec where
     * given, else what the graph says and the library's assumptions (see {@link #preprocess()}).
     */
    public static Model fromBytes(byte[] onnx, ModelOptions options) {
        if (onnx.length == 0) {
            throw Native.invalid("the model is 0 bytes");
        }
        Memory[] keep = new Memory[2];
        ChipLibrary.CModelOptions o = options.toC(keep);
        PointerByReference out = new PointerByReference();
        Native.check(Native.LIB.chip_model_load_bytes(onnx, Native.size(onnx.length), o, out));
        java.lang.ref.Reference.reachabilityFence(keep);
        return new Model(out.getValue());
    }

    public int classCount() {
        return use(p -> {
            SizeTByReference n = new SizeTByReference();
            Native.check(Native.LIB.chip_model_class_count(p, n));
            return Math.toIntExact(n.getValue());
        });
    }

    /** The input size in pixels (the size of {@link Images#tensor} images). */
    public Size inputSize() {
        return use(p -> {
            ChipLibrary.CSize s = new ChipLibrary.CSize();
            Native.check(Native.LIB.chip_model_input_size(p, s));
            return Size.of(s);
        });
    }

    /** The name of a class (its decimal id for models without labels). */
    public String classLabel(int classId) {
        return use(p -> Native.getString((buf, len, out) ->
                Native.LIB.chip_model_class_label(p, Native.index(classId), buf, len, out)));
    }

    /**
     * The effective preprocessing as JSON text: {@code {"spec": {...}, "sources": {key: "given" |
     * "sidecar" | "graph" | "probe" | "assumed"}, "fingerprint": "..."}}; "assumed" marks a value
     * nothing stated (the library's default).
     */
    public String preprocess() {
        return use(p -> Native.getString((buf, len, out) -> Native.LIB.chip_model_preprocess(p, buf, len, out)));
    }

    /** The candidate layers (4-D activations) in graph order. */
    public List<Layer> layers() {
        return use(p -> {
            SizeTByReference n = new SizeTByReference();
            Native.check(Native.LIB.chip_model_layer_count(p, n));
            List<Layer> layers = new ArrayList<>();
            for (long i = 0; i < n.getValue(); i++) {
                long index = i;
                SizeTByReference c = new SizeTByReference();
                SizeTByReference h = new SizeTByReference();
                SizeTByReference w = new SizeTByReference();
                String name = Native.getString((buf, len, out) ->
                        Native.LIB.chip_model_layer_info(p, Native.size(index), buf, len, out, c, h, w));
                layers.add(new Layer(name, Math.toIntExact(c.getValue()), Math.toIntExact(h.getValue()),
                        Math.toIntExact(w.getValue())));
            }
            return List.copyOf(layers);
        });
    }

    private long tensorLength() {
        Size s = inputSize();
        return 3L * s.width() * s.height();
    }

    /** Decodes and preprocesses an image file as the model expects, for {@link Images#tensor}. */
    public Prepared preprocess(Path path) {
        return use(p -> {
            ChipLibrary.CSize size = new ChipLibrary.CSize();
            float[] data = Native.getFloats(tensorLength(), (buf, len, out) ->
                    Native.LIB.chip_model_preprocess_file(p, path.toString(), buf, len, out, size));
            return new Prepared(data, Size.of(size));
        });
    }

    /** Decodes and preprocesses an encoded image (PNG, JPEG, ...) held in memory. */
    public Prepared preprocess(byte[] encoded) {
        return use(p -> {
            ChipLibrary.CSize size = new ChipLibrary.CSize();
            float[] data = Native.getFloats(tensorLength(), (buf, len, out) ->
                    Native.LIB.chip_model_preprocess_encoded(p, encoded.length == 0 ? null : encoded,
                            Native.size(encoded.length), buf, len, out, size));
            return new Prepared(data, Size.of(size));
        });
    }

    /** Class probabilities of n preprocessed images (n x 3 x H x W floats): one row per image. */
    public float[][] predict(float[] data, int n) {
        if (n < 0) {
            throw Native.invalid("negative image count");
        }
        int classes = classCount();
        float[] flat = use(p -> Native.getFloats((long) n * classes, (buf, len, out) ->
                Native.LIB.chip_model_predict(p, data.length == 0 ? null : data, Native.size(data.length),
                        Native.size(n), buf, len, out)));
        float[][] rows = new float[n][];
        for (int i = 0; i < n; i++) {
            rows[i] = java.util.Arrays.copyOfRange(flat, i * classes, (i + 1) * classes);
        }
        return rows;
    }

    /**
     * Fits a layer's class-by-channel importance on images of any kind. Runs images x gates forward
     * passes; see {@link FitOptions#progress} to follow or cancel it.
     */
    public LayerFit fitLayer(String layer, Images images, FitOptions options) {
        return use(p -> options.run(o -> images.withC(d -> {
            PointerByReference out = new PointerByReference();
            Native.check(Native.LIB.chip_fit_layer(p, layer, d, o, out));
            return new LayerFit(out.getValue());
        })));
    }

    /**
     * Collects the statistics of a layer on the images of one shard (see {@link Stats}). Of the
     * options, the gates, seed, sigma2Rel, target, views and mosaics are used; lambdaRel, rho, maxIter
     * and the classes are not.
     */
    public Stats collectStats(String layer, Images images, FitOptions options) {
        return use(p -> options.run(o -> images.withC(d -> {
            PointerByReference out = new PointerByReference();
            Native.check(Native.LIB.chip_collect_stats(p, layer, d, o, out));
            return new Stats(out.getValue());
        })));
    }

    /**
     * Solves statistics into a fit of their layer. Of the options, lambdaRel, rho, maxIter, the
     * classes, the objective (target, which must be the one collected with, intercept, nonneg) and
     * the progress listener are used.
     */
    public LayerFit solve(Stats stats, FitOptions options) {
        return use(p -> stats.use(sp -> options.run(o -> {
            PointerByReference out = new PointerByReference();
            Native.check(Native.LIB.chip_solve(p, sp, o, out));
            return new LayerFit(out.getValue());
        })));
    }
}
