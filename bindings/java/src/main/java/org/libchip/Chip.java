package org.libchip;

import com.sun.jna.ptr.DoubleByReference;

/** Library-wide functions of libchip. */
public final class Chip {
    /** The C ABI version this binding was written for. */
    public static final int ABI_VERSION = 3;

    private Chip() {}

    /** The library version, "MAJOR.MINOR.PATCH". */
    public static String version() {
        return Native.LIB.chip_version();
    }

    /** The C ABI version of the loaded library. */
    public static int abiVersion() {
        return Native.LIB.chip_abi_version();
    }

    /**
     * The box of the largest 8-connected region of {map >= threshold * max}; {@link Box#NONE} when
     * the map has no positive value or holds NaN.
     */
    public static Box localize(ChipMap map, float threshold) {
        ChipLibrary.CBox box = new ChipLibrary.CBox();
        Native.check(Native.LIB.chip_localize(map.data().length == 0 ? null : map.data(), Native.size(map.width()),
                Native.size(map.height()), threshold, box));
        return Box.of(box);
    }

    /** Intersection over union of two boxes (inclusive corners), in 0..1; 0 when either is {@link Box#NONE}. */
    public static double iou(Box a, Box b) {
        DoubleByReference out = new DoubleByReference();
        Native.check(Native.LIB.chip_iou(a.toC(), b.toC(), out));
        return out.getValue();
    }
}
