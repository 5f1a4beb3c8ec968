package org.libchip;

/** A candidate layer of a model: a 4-D activation of channels x height x width. */
public record Layer(String name, int channels, int height, int width) {}
