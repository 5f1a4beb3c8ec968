package org.libchip;

import com.sun.jna.Pointer;
import com.sun.jna.ptr.PointerByReference;
import java.nio.file.Path;
import org.libchip.ChipLibrary.SizeTByReference;

/** One fitted layer: the class-by-channel importance weights. Immutable; explainers copy it. */
public final class LayerFit extends NativeHandle {
    LayerFit(Pointer p) {
        super(p, Native.LIB::chip_layer_fit_free, "layer fit");
    }

    /** Reads a fit written by {@link #save} (or the command line tool). */
    public static LayerFit load(Path path) {
        PointerByReference out = new PointerByReference();
        Native.check(Native.LIB.chip_layer_fit_load(path.toString(), out));
        return new LayerFit(out.getValue());
    }

    /** Writes the fit atomically: a failure leaves no file behind. */
    public void save(Path path) {
        use(p -> {
            Native.check(Native.LIB.chip_layer_fit_save(p, path.toString()));
            return null;
        });
    }

    public String layerName() {
        return use(p -> Native.getString((buf, len, out) -> Native.LIB.chip_layer_fit_layer_name(p, buf, len, out)));
    }

    /** The number of channels K of the fitted layer. */
    public int channelCount() {
        return use(p -> {
            SizeTByReference n = new SizeTByReference();
            Native.check(Native.LIB.chip_layer_fit_channel_count(p, n));
            return Math.toIntExact(n.getValue());
        });
    }

    /** The number of classes C (weight rows). */
    public int classCount() {
        return use(p -> {
            SizeTByReference n = new SizeTByReference();
            Native.check(Native.LIB.chip_layer_fit_class_count(p, n));
            return Math.toIntExact(n.getValue());
        });
    }

    /** The importance of each channel for a class (zero for classes that were not solved). */
    public float[] weightsRow(int classId) {
        int k = channelCount();
        return use(p -> Native.getFloats(k, (buf, len, out) ->
                Native.LIB.chip_layer_fit_weights_row(p, Native.index(classId), buf, len, out)));
    }
}
