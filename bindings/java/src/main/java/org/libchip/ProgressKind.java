package org.libchip;

/** The stage of a fit a progress report is about. */
public enum ProgressKind {
    /** Images through the layer's prefix. */
    IMAGES,
    /** Gated suffix runs. */
    SUFFIX_RUNS,
    /** Classes solved. */
    CLASSES;

    static ProgressKind of(int code) {
        ProgressKind[] all = values();
        if (code < 0 || code >= all.length) {
            throw new IllegalArgumentException("unknown progress kind " + code);
        }
        return all[code];
    }
}
