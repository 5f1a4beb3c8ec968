package org.libchip;

import com.sun.jna.Pointer;
import com.sun.jna.ptr.PointerByReference;
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

    /** Explains images of any kind. */
    public Explanation explain(Images images, ExplainOptions options) {
        Object[] keep = new Object[1];
        ChipLibrary.CExplainOptions o = options.toC(keep);
        return use(p -> images.withC(d -> {
            PointerByReference out = new PointerByReference();
            Native.check(Native.LIB.chip_explain(p, d, o, out));
            java.lang.ref.Reference.reachabilityFence(keep);
            return new Explanation(out.getValue());
        }));
    }
}
