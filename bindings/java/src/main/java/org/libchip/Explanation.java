package org.libchip;

import com.sun.jna.Pointer;
import com.sun.jna.ptr.FloatByReference;
import java.util.ArrayList;
import java.util.List;
import org.libchip.ChipLibrary.SizeT;
import org.libchip.ChipLibrary.SizeTByReference;

/**
 * The result of one explain call: per image the probabilities, top classes and, per explained class,
 * one map per fitted layer (plus the refined map when asked) with its box. Immutable: may be read
 * from many threads at once.
 */
public final class Explanation extends NativeHandle {
    /** The layer index of the Refined CHIP map in {@link #map} and {@link #box}. */
    public static final int REFINED = -1;

    Explanation(Pointer p) {
        super(p, Native.LIB::chip_explanation_free, "explanation");
    }

    private static SizeT layerIndex(int layer) {
        return layer == REFINED ? new SizeT(-1) : Native.index(layer);
    }

    public int imageCount() {
        return use(p -> {
            SizeTByReference n = new SizeTByReference();
            Native.check(Native.LIB.chip_explanation_image_count(p, n));
            return Math.toIntExact(n.getValue());
        });
    }

    /** The number of maps per explained class (the refined map is extra). */
    public int layerCount() {
        return use(p -> {
            SizeTByReference n = new SizeTByReference();
            Native.check(Native.LIB.chip_explanation_layer_count(p, n));
            return Math.toIntExact(n.getValue());
        });
    }

    /** The original size of an image. */
    public Size imageSize(int image) {
        return use(p -> {
            ChipLibrary.CSize s = new ChipLibrary.CSize();
            Native.check(Native.LIB.chip_explanation_image_size(p, Native.index(image), s));
            return Size.of(s);
        });
    }

    /** The class probabilities of an image. */
    public float[] probabilities(int image) {
        return use(p -> Native.getFloats(0, (buf, len, out) ->
                Native.LIB.chip_explanation_probabilities(p, Native.index(image), buf, len, out)));
    }

    /** The most probable classes of an image (at most 5), most probable first. */
    public List<ClassProbability> top(int image) {
        return use(p -> {
            SizeTByReference n = new SizeTByReference();
            Native.check(Native.LIB.chip_explanation_top_count(p, Native.index(image), n));
            List<ClassProbability> out = new ArrayList<>();
            for (long r = 0; r < n.getValue(); r++) {
                SizeTByReference c = new SizeTByReference();
                FloatByReference pr = new FloatByReference();
                Native.check(Native.LIB.chip_explanation_top(p, Native.index(image), Native.size(r), c, pr));
                out.add(new ClassProbability(Math.toIntExact(c.getValue()), pr.getValue()));
            }
            return List.copyOf(out);
        });
    }

    /** The explained classes of an image, in the order of their maps. */
    public List<ClassProbability> classes(int image) {
        return use(p -> {
            SizeTByReference n = new SizeTByReference();
            Native.check(Native.LIB.chip_explanation_class_count(p, Native.index(image), n));
            List<ClassProbability> out = new ArrayList<>();
            for (long i = 0; i < n.getValue(); i++) {
                SizeTByReference c = new SizeTByReference();
                FloatByReference pr = new FloatByReference();
                Native.check(Native.LIB.chip_explanation_class(p, Native.index(image), Native.size(i), c, pr));
                out.add(new ClassProbability(Math.toIntExact(c.getValue()), pr.getValue()));
            }
            return List.copyOf(out);
        });
    }

    /** The map of an image's explained class number {@code index} (not the class id) for a layer, or {@link #REFINED}. */
    public ChipMap map(int image, int index, int layer) {
        return use(p -> {
            SizeT img = Native.index(image);
            SizeT idx = Native.index(index);
            SizeT lay = layerIndex(layer);
            ChipLibrary.CSize s = new ChipLibrary.CSize();
            Native.check(Native.LIB.chip_explanation_map_size(p, img, idx, lay, s));
            int width = s.width;
            int height = s.height;
            float[] data = Native.getFloats((long) width * height, (buf, len, out) ->
                    Native.LIB.chip_explanation_map(p, img, idx, lay, buf, len, out));
            return new ChipMap(width, height, data);
        });
    }

    /** The localization box of a map; {@link Box#NONE} when the map has no positive value. */
    public Box box(int image, int index, int layer) {
        return use(p -> {
            ChipLibrary.CBox box = new ChipLibrary.CBox();
            Native.check(Native.LIB.chip_explanation_box(p, Native.index(image), Native.index(index), layerIndex(layer), box));
            return Box.of(box);
        });
    }

    /**
     * Whether the fit of a map's layer solved its class ({@link #REFINED}: both layers' fits). A
     * class the fits did not solve ({@link FitOptions} classes), picked by top-k, gets an all-zero
     * map with {@link Box#NONE}; this tells it from a map that is empty for the image.
     */
    public boolean solved(int image, int index, int layer) {
        return use(p -> {
            com.sun.jna.ptr.ByteByReference out = new com.sun.jna.ptr.ByteByReference();
            Native.check(Native.LIB.chip_explanation_map_solved(p, Native.index(image), Native.index(index), layerIndex(layer), out));
            return out.getValue() != 0;
        });
    }
}
