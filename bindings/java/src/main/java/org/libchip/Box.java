package org.libchip;

/** A bounding box with inclusive pixel corners, x to the right, y down. */
public record Box(int x1, int y1, int x2, int y2) {
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
