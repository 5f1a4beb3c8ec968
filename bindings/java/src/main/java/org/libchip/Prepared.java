package org.libchip;

/** An image preprocessed as the model expects (3 x H x W floats at its input size) and the size of the original image. */
public record Prepared(float[] data, Size size) {}
