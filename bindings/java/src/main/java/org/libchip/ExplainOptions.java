package org.libchip;

/** What to explain; a new instance holds the library's defaults. Setters return this. */
public final class ExplainOptions {
    private long topK;
    private int[] classes = new int[0];
    private boolean refined;
    private float threshold;
    private boolean originalSize;

    public ExplainOptions() {
        ChipLibrary.CExplainOptions c = new ChipLibrary.CExplainOptions();
        c.struct_size = Native.size(c.size());
        Native.check(Native.LIB.chip_explain_options_default(c));
        topK = c.top_k.longValue();
        refined = c.refined != 0;
        threshold = c.threshold;
        originalSize = c.original_size != 0;
    }

    /** Explain the topK most probable classes (used when no classes are given). */
    public ExplainOptions topK(long topK) {
        this.topK = topK;
        return this;
    }

    /** Explain these class ids instead. */
    public ExplainOptions classes(int... classes) {
        this.classes = classes.clone();
        return this;
    }

    /** Also compute Refined CHIP (the product of the first and last layer's maps). */
    public ExplainOptions refined(boolean refined) {
        this.refined = refined;
        return this;
    }

    /** Localization threshold relative to a map's maximum. */
    public ExplainOptions threshold(float threshold) {
        this.threshold = threshold;
        return this;
    }

    /** Maps at the original image size (true) or at the model's input size. */
    public ExplainOptions originalSize(boolean originalSize) {
        this.originalSize = originalSize;
        return this;
    }

    public float threshold() {
        return threshold;
    }

    public boolean refined() {
        return refined;
    }

    /** The C options; keep[0] holds the class array until the call returns. */
    ChipLibrary.CExplainOptions toC(Object[] keep) {
        if (topK < 0) {
            throw Native.invalid("topK is negative");
        }
        ChipLibrary.CExplainOptions c = new ChipLibrary.CExplainOptions();
        c.struct_size = Native.size(c.size());
        Native.check(Native.LIB.chip_explain_options_default(c));
        c.top_k = Native.size(topK);
        com.sun.jna.Memory ids = FitOptions.sizeArray(classes);
        keep[0] = ids;
        c.classes = ids;
        c.class_count = Native.size(classes.length);
        c.refined = refined ? 1 : 0;
        c.threshold = threshold;
        c.original_size = originalSize ? 1 : 0;
        return c;
    }
}
