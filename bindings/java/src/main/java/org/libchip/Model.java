package org.libchip;

import com.sun.jna.Memory;
import com.sun.jna.ptr.IntByReference;
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
        Memory[] keep = new Memory[1];
        ChipLibrary.CModelOptions o = options.toC(keep);
        PointerByReference out = new PointerByReference();
        Native.check(Native.LIB.chip_load_model(path.toString(), o, out));
        java.lang.ref.Reference.reachabilityFence(keep);
        return new Model(out.getValue());
    }

    /** Loads a model from memory (no sidecar: ImageNet preprocessing, no labels). */
    public static Model fromBytes(byte[] onnx, ModelOptions options) {
        if (onnx.length == 0) {
            throw Native.invalid("the model is 0 bytes");
        }
        Memory[] keep = new Memory[1];
        ChipLibrary.CModelOptions o = options.toC(keep);
        PointerByReference out = new PointerByReference();
        Native.check(Native.LIB.chip_load_model_bytes(onnx, Native.size(onnx.length), o, out));
        java.lang.ref.Reference.reachabilityFence(keep);
        return new Model(out.getValue());
    }

    public int numClasses() {
        return use(p -> {
            SizeTByReference n = new SizeTByReference();
            Native.check(Native.LIB.chip_model_num_classes(p, n));
            return Math.toIntExact(n.getValue());
        });
    }

    /** The input size in pixels, {width, height}. */
    public int[] inputSize() {
        return use(p -> {
            SizeTByReference w = new SizeTByReference();
            SizeTByReference h = new SizeTByReference();
            Native.check(Native.LIB.chip_model_input_size(p, w, h));
            return new int[] {Math.toIntExact(w.getValue()), Math.toIntExact(h.getValue())};
        });
    }

    /** The name of a class (its decimal id for models without labels). */
    public String classLabel(int classId) {
        return use(p -> Native.getString((buf, len, out) ->
                Native.LIB.chip_model_class_label(p, Native.index(classId), buf, len, out)));
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
        int[] s = inputSize();
        return 3L * s[0] * s[1];
    }

    /** Decodes and preprocesses an image file as the model expects. */
    public PreprocessedImage preprocess(Path path) {
        return use(p -> {
            IntByReference w = new IntByReference();
            IntByReference h = new IntByReference();
            float[] data = Native.getFloats(tensorLength(), (buf, len, out) ->
                    Native.LIB.chip_model_preprocess_file(p, path.toString(), buf, len, out, w, h));
            return new PreprocessedImage(data, w.getValue(), h.getValue());
        });
    }

    /** Decodes and preprocesses an encoded image (PNG, JPEG, ...) held in memory. */
    public PreprocessedImage preprocess(byte[] encoded) {
        return use(p -> {
            IntByReference w = new IntByReference();
            IntByReference h = new IntByReference();
            float[] data = Native.getFloats(tensorLength(), (buf, len, out) ->
                    Native.LIB.chip_model_preprocess_encoded(p, encoded.length == 0 ? null : encoded,
                            Native.size(encoded.length), buf, len, out, w, h));
            return new PreprocessedImage(data, w.getValue(), h.getValue());
        });
    }

    /** Class probabilities of n preprocessed images (n x 3 x H x W floats): one row per image. */
    public float[][] predict(float[] data, int n) {
        if (n < 0) {
            throw Native.invalid("negative image count");
        }
        int classes = numClasses();
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
     * Fits a layer's class-by-channel importance on image files. Runs images x gates forward passes;
     * see {@link FitOptions#progress} to follow or cancel it.
     */
    public LayerFit fitLayer(String layer, List<Path> photos, FitOptions options) {
        String[] paths = photos.stream().map(Path::toString).toArray(String[]::new);
        return use(p -> options.run(o -> {
            PointerByReference out = new PointerByReference();
            int st = Native.LIB.chip_fit_layer_paths(p, layer, paths.length == 0 ? null : paths,
                    Native.size(paths.length), o, out);
            return st == 0 ? new LayerFit(out.getValue()) : failed(st);
        }));
    }

    /** Fits a layer on n preprocessed images (n x 3 x H x W floats at the model's input size). */
    public LayerFit fitLayer(String layer, float[] data, int n, FitOptions options) {
        if (n < 0) {
            throw Native.invalid("negative image count");
        }
        return use(p -> options.run(o -> {
            PointerByReference out = new PointerByReference();
            int st = Native.LIB.chip_fit_layer_tensor(p, layer, data.length == 0 ? null : data,
                    Native.size(data.length), Native.size(n), o, out);
            return st == 0 ? new LayerFit(out.getValue()) : failed(st);
        }));
    }

    private static LayerFit failed(int status) {
        Native.check(status);
        throw new AssertionError();
    }
}
