package org.libchip;

import org.libchip.ChipLibrary.SizeT;
import org.libchip.ChipLibrary.SizeTByReference;

/** Calls into libchip: status checks and the C buffer convention. */
final class Native {
    static final ChipLibrary LIB = ChipLibrary.LIB;

    private Native() {}

    /** Throws the ChipException of a failed call. The last error is per thread, and JNA calls on the caller's thread. */
    static void check(int status) {
        if (status != 0) {
            throw new ChipException(status, LIB.chip_last_error());
        }
    }

    static SizeT size(long v) {
        return new SizeT(v);
    }

    /** An index; negative values become out of range, for libchip to reject. */
    static SizeT index(long i) {
        return new SizeT(i < 0 ? -2 : i);
    }

    static ChipException invalid(String message) {
        return new ChipException(Status.INVALID_ARGUMENT, message);
    }

    interface StringCall {
        int call(byte[] buf, SizeT len, SizeTByReference outLen);
    }

    interface FloatCall {
        int call(float[] buf, SizeT len, SizeTByReference outLen);
    }

    static String getString(StringCall f) {
        SizeTByReference n = new SizeTByReference();
        check(f.call(null, size(0), n));
        if (n.getValue() == 0) {
            return "";
        }
        byte[] buf = new byte[Math.toIntExact(n.getValue())];
        check(f.call(buf, size(buf.length), n));
        return new String(buf, 0, Math.toIntExact(n.getValue()) - 1, java.nio.charset.StandardCharsets.UTF_8);
    }

    /** Reads floats; with hint > 0 it first tries a buffer of that size (one call instead of two). */
    static float[] getFloats(long hint, FloatCall f) {
        SizeTByReference n = new SizeTByReference();
        if (hint > 0) {
            float[] buf = new float[Math.toIntExact(hint)];
            int st = f.call(buf, size(buf.length), n);
            if (st == 0) {
                return n.getValue() == buf.length ? buf : java.util.Arrays.copyOf(buf, Math.toIntExact(n.getValue()));
            }
            if (st != Status.BUFFER_TOO_SMALL.code()) {
                check(st);
            }
        } else {
            check(f.call(null, size(0), n));
        }
        float[] buf = new float[Math.toIntExact(n.getValue())];
        if (buf.length == 0) {
            return buf;
        }
        check(f.call(buf, size(buf.length), n));
        return buf;
    }
}
