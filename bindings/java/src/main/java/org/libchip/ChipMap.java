package org.libchip;

/** An explanation map: height rows of width floats, row-major. */
public record ChipMap(int width, int height, float[] data) {
    public ChipMap {
        if (width < 0 || height < 0 || data.length != (long) width * height) {
            throw new IllegalArgumentException(data.length + " values for a " + width + "x" + height + " map");
        }
    }

    /** The map's size. */
    public Size size() {
        return new Size(width, height);
    }

    /** The value at column x, row y. */
    public float at(int x, int y) {
        return data[y * width + x];
    }

    /** The sum of all values, in double. */
    public double sum() {
        double s = 0;
        for (float v : data) {
            s += v;
        }
        return s;
    }

    /** The largest value (0 for an empty map). */
    public float max() {
        float m = data.length == 0 ? 0 : data[0];
        for (float v : data) {
            m = Math.max(m, v);
        }
        return m;
    }
}
