package org.libchip;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Function;

/**
 * The images of one fit, statistics collection or explanation: files, encoded images in memory or
 * preprocessed images. Nothing is copied until the call.
 */
public final class Images {
    private static final int FILES = 1;
    private static final int ENCODED = 2;
    private static final int TENSOR = 3;

    private final int kind;
    private final List<Path> paths;
    private final List<byte[]> encoded;
    private final float[] tensor;
    private final int count;
    private final List<Size> sizes;

    private Images(int kind, List<Path> paths, List<byte[]> encoded, float[] tensor, int count, List<Size> sizes) {
        this.kind = kind;
        this.paths = paths;
        this.encoded = encoded;
        this.tensor = tensor;
        this.count = count;
        this.sizes = sizes;
    }

    /** Image files (PNG, JPEG, BMP, TIFF, WebP). */
    public static Images files(List<Path> paths) {
        return new Images(FILES, List.copyOf(paths), null, null, paths.size(), null);
    }

    public static Images files(Path... paths) {
        return files(List.of(paths));
    }

    /** Encoded images (PNG, JPEG, BMP, TIFF, WebP) held in memory. */
    public static Images encoded(List<byte[]> images) {
        return new Images(ENCODED, null, List.copyOf(images), null, images.size(), null);
    }

    public static Images encoded(byte[]... images) {
        return encoded(List.of(images));
    }

    /**
     * n preprocessed images: n x 3 x H x W floats at the model's input size (see
     * {@link Model#preprocess(Path)}). sizes holds each image's original size, the size the maps of
     * an explanation are scaled to, or is null for the input size; fits ignore it.
     */
    public static Images tensor(float[] data, int n, List<Size> sizes) {
        if (n < 0) {
            throw Native.invalid("negative image count");
        }
        if (sizes != null && sizes.size() != n) {
            throw Native.invalid(sizes.size() + " sizes for " + n + " images");
        }
        return new Images(TENSOR, null, null, data, n, sizes == null ? null : List.copyOf(sizes));
    }

    /** Runs f with the C descriptor; the native memory it points to lives until f returns. */
    <T> T withC(Function<ChipLibrary.CImages, T> f) {
        ChipLibrary.CImages d = new ChipLibrary.CImages();
        d.struct_size = Native.size(d.size());
        d.kind = kind;
        d.count = Native.size(count);
        Object[] keep = new Object[3];
        switch (kind) {
            case FILES -> {
                String[] s = paths.stream().map(Path::toString).toArray(String[]::new);
                com.sun.jna.StringArray arr = new com.sun.jna.StringArray(s, "UTF-8");
                keep[0] = arr;
                d.paths = arr;
            }
            case ENCODED -> {
                if (count > 0) {
                    Memory ptrs = new Memory((long) count * com.sun.jna.Native.POINTER_SIZE);
                    Memory lens = new Memory((long) count * com.sun.jna.Native.SIZE_T_SIZE);
                    Memory[] bufs = new Memory[count];
                    for (int i = 0; i < count; i++) {
                        byte[] b = encoded.get(i);
                        if (b.length > 0) {
                            bufs[i] = new Memory(b.length);
                            bufs[i].write(0, b, 0, b.length);
                        }
                        ptrs.setPointer((long) i * com.sun.jna.Native.POINTER_SIZE, bufs[i]);
                        setSize(lens, i, b.length);
                    }
                    keep[0] = ptrs;
                    keep[1] = lens;
                    keep[2] = bufs;
                    d.data = ptrs;
                    d.lens = lens;
                }
            }
            default -> {
                if (tensor.length > 0) {
                    Memory t = new Memory(4L * tensor.length);
                    t.write(0, tensor, 0, tensor.length);
                    keep[0] = t;
                    d.tensor = t;
                }
                d.tensor_len = Native.size(tensor.length);
                if (sizes != null && count > 0) {
                    Memory s = new Memory(8L * count);
                    for (int i = 0; i < count; i++) {
                        Size z = sizes.get(i);
                        // Negative sides reach libchip as 0, which it rejects with a message.
                        s.setInt(8L * i, Math.max(z.width(), 0));
                        s.setInt(8L * i + 4, Math.max(z.height(), 0));
                    }
                    keep[1] = s;
                    d.sizes = s;
                }
            }
        }
        try {
            return f.apply(d);
        } finally {
            java.lang.ref.Reference.reachabilityFence(keep);
            java.lang.ref.Reference.reachabilityFence(d);
        }
    }

    private static void setSize(Pointer m, int i, long v) {
        if (com.sun.jna.Native.SIZE_T_SIZE == 8) {
            m.setLong(8L * i, v);
        } else {
            m.setInt(4L * i, (int) v);
        }
    }
}
