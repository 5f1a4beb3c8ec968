package org.libchip;

import java.nio.file.Path;

/** Options of {@link Model#load(Path, ModelOptions)}; a new instance holds the library's defaults. */
public final class ModelOptions {
    /** Where a model runs. */
    public enum Device {
        CPU(0),
        CUDA(1);

        final int code;

        Device(int code) {
            this.code = code;
        }
    }

    private Device device = Device.CPU;
    private int deviceId;
    private int threads;
    private Path ortLib;
    private String preprocess;

    public ModelOptions device(Device device, int deviceId) {
        this.device = device;
        this.deviceId = deviceId;
        return this;
    }

    /** Intra-op threads per session; 0 lets ONNX Runtime choose. */
    public ModelOptions threads(int threads) {
        this.threads = threads;
        return this;
    }

    /**
     * Path of libonnxruntime.so; null searches CHIP_ORT_LIB, beside libchip, beside the executable.
     * ONNX Runtime is loaded once per process; later values are ignored.
     */
    public ModelOptions ortLib(Path ortLib) {
        this.ortLib = ortLib;
        return this;
    }

    /**
     * A preprocessing spec as JSON text (the keys of the sidecar {@code <model>.json}), or null for
     * none. Its keys override the sidecar's; an unknown key fails the load with a {@link ChipException}
     * of {@link Status#INVALID_ARGUMENT} naming it. {@link Model#preprocess()} tells the effective spec
     * and where each value came from.
     */
    public ModelOptions preprocess(String json) {
        this.preprocess = json;
        return this;
    }

    private static com.sun.jna.Memory cString(String s) {
        byte[] b = s.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        com.sun.jna.Memory m = new com.sun.jna.Memory(b.length + 1L);
        m.write(0, b, 0, b.length);
        m.setByte(b.length, (byte) 0);
        return m;
    }

    /** The C struct; {@code keep} (two slots) holds the strings it points to for the call. */
    ChipLibrary.CModelOptions toC(com.sun.jna.Memory[] keep) {
        ChipLibrary.CModelOptions c = new ChipLibrary.CModelOptions();
        c.struct_size = Native.size(c.size());
        Native.check(Native.LIB.chip_model_options_default(c));
        c.device = device.code;
        c.device_id = deviceId;
        if (threads < 0) {
            throw Native.invalid("threads is negative");
        }
        c.threads = Native.size(threads);
        if (ortLib != null) {
            keep[0] = cString(ortLib.toString());
            c.ort_lib = keep[0];
        }
        if (preprocess != null) {
            keep[1] = cString(preprocess);
            c.preprocess = keep[1];
        }
        return c;
    }
}
