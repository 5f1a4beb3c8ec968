package org.libchip;

/** A size in pixels. */
public record Size(int width, int height) {
    static Size of(ChipLibrary.CSize s) {
        return new Size(s.width, s.height);
    }
}
