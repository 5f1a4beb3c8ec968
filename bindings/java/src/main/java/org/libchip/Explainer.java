package org.libchip;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import com.sun.jna.ptr.PointerByReference;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.libchip.ChipLibrary.SizeT;
import org.libchip.ChipLibrary.SizeTByReference;

/** A model with fitted layers, ready to explain images. The explain methods may be called from many threads at once. */
public final class Explainer extends NativeHandle {
    private Explainer(Pointer p) {
        super(p, Native.LIB::chip_explainer_free, "explainer");
    }

    /**
     * An explainer over a model and fits (copied; their order is the layer order of the maps, the
     * first and last give Refined CHIP). Fails with {@link Status#FIT_MISMATCH} when a fit belongs
     * to another model or layer shape.
     */
    public static Explainer create(Model model, LayerFit... fits) {
        return model.use(mp -> {
            List<Pointer> ptrs = new ArrayList<>();
            List<Explainer> made = new ArrayList<>();
            addFits(fits, 0, ptrs, () -> {
                PointerByReference out = new PointerByReference();
                Native.check(Native.LIB.chip_explainer_new(mp, ptrs.isEmpty() ? null : ptrs.toArray(new Pointer[0]),
                        Native.size(ptrs.size()), out));
                made.add(new Explainer(out.getValue()));
            });
            return made.get(0);
        });
    }

    /** Holds each fit in use (so none is freed) while the explainer is made. */
    private static void addFits(LayerFit[] fits, int i, List<Pointer> ptrs, Runnable done) {
        if (i == fits.length) {
            done.run();
            return;
        }
        fits[i].use(fp -> {
            ptrs.add(fp);
            addFits(fits, i + 1, ptrs, done);
            return null;
        });
    }

    /** The fitted layers, in map order. */
    public List<String> layerNames() {
        return use(p -> {
            SizeTByReference n = new SizeTByReference();
            Native.check(Native.LIB.chip_explainer_layer_count(p, n));
            List<String> names = new ArrayList<>();
            for (long i = 0; i < n.getValue(); i++) {
                SizeT index = Native.size(i);
                names.add(Native.getString((buf, len, out) -> Native.LIB.chip_explainer_layer_name(p, index, buf, len, out)));
            }
            return List.copyOf(names);
        });
    }

    /** Explains image files. */
    public Explanation explainFiles(List<Path> photos, ExplainOptions options) {
        String[] paths = photos.stream().map(Path::toString).toArray(String[]::new);
        Object[] keep = new Object[1];
        ChipLibrary.CExplainOptions o = options.toC(keep);
        return use(p -> {
            PointerByReference out = new PointerByReference();
            Native.check(Native.LIB.chip_explain_files(p, paths.length == 0 ? null : paths, Native.size(paths.length), o, out));
            java.lang.ref.Reference.reachabilityFence(keep);
            return new Explanation(out.getValue());
        });
    }

    /** Explains encoded images (PNG, JPEG, BMP, TIFF, WebP) held in memory. */
    public Explanation explainEncoded(List<byte[]> images, ExplainOptions options) {
        int n = images.size();
        Pointer[] ptrs = new Pointer[n];
        SizeT[] lens = new SizeT[n];
        Memory[] mems = new Memory[n];
        for (int i = 0; i < n; i++) {
            byte[] img = images.get(i);
            if (img.length > 0) {
                mems[i] = new Memory(img.length);
                mems[i].write(0, img, 0, img.length);
            }
            ptrs[i] = mems[i];
            lens[i] = Native.size(img.length);
        }
        Object[] keep = new Object[1];
        ChipLibrary.CExplainOptions o = options.toC(keep);
        return use(p -> {
            PointerByReference out = new PointerByReference();
            Native.check(Native.LIB.chip_explain_encoded(p, n == 0 ? null : ptrs, n == 0 ? null : lens, Native.size(n), o, out));
            java.lang.ref.Reference.reachabilityFence(keep);
            java.lang.ref.Reference.reachabilityFence(mems);
            return new Explanation(out.getValue());
        });
    }

    /**
     * Explains n preprocessed images (n x 3 x H x W floats at the model's input size). sizes holds
     * each image's original {width, height}, the size maps are scaled to, or is null for the input size.
     */
    public Explanation explainTensor(float[] data, int n, int[][] sizes, ExplainOptions options) {
        if (n < 0) {
            throw Native.invalid("negative image count");
        }
        int[] flat = null;
        if (sizes != null) {
            if (sizes.length != n) {
                throw Native.invalid(sizes.length + " sizes for " + n + " images");
            }
            flat = new int[2 * n];
            for (int i = 0; i < n; i++) {
                if (sizes[i].length != 2) {
                    throw Native.invalid("size " + i + " is not {width, height}");
                }
                flat[2 * i] = sizes[i][0];
                flat[2 * i + 1] = sizes[i][1];
            }
        }
        int[] csizes = flat != null && flat.length > 0 ? flat : null;
        Object[] keep = new Object[1];
        ChipLibrary.CExplainOptions o = options.toC(keep);
        return use(p -> {
            PointerByReference out = new PointerByReference();
            Native.check(Native.LIB.chip_explain_tensor(p, data.length == 0 ? null : data, Native.size(data.length),
                    Native.size(n), csizes, o, out));
            java.lang.ref.Reference.reachabilityFence(keep);
            return new Explanation(out.getValue());
        });
    }
}
