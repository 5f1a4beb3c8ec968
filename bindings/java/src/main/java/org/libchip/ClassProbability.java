package org.libchip;

/** A class id with its probability. */
public record ClassProbability(int classId, float probability) {}
