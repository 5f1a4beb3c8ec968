package org.libchip;

/** An image preprocessed as the model expects (3 x H x W floats) and the size of the original image. */
public record PreprocessedImage(float[] data, int originalWidth, int originalHeight) {}
