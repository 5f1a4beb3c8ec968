package org.libchip;

/**
 * A bounding box with inclusive pixel corners, x to the right, y down. No box (a map without a
 * positive value) is {@link #NONE}, all four corners -1.
 */
public record Box(int x1, int y1, int x2, int y2) {
    /** No box. */
    public static final Box NONE = new Box(-1, -1, -1, -1);

    /** False for {@link #NONE}. */
    public boolean found() {
        return x1 >= 0;
    }

    ChipLibrary.CBox toC() {
        ChipLibrary.CBox b = new ChipLibrary.CBox();
        b.x1 = x1;
        b.y1 = y1;
        b.x2 = x2;
        b.y2 = y2;
        return b;
    }

    static Box of(ChipLibrary.CBox b) {
        return new Box(b.x1, b.y1, b.x2, b.y2);
    }
}
