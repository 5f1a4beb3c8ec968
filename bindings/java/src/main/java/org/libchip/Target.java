package org.libchip;

/** What each class's linear model regresses in a fit. The CHIP paper's objective is PROBABILITY without intercept. */
public enum Target {
    PROBABILITY(0),
    LOGIT(1),
    LOG_PROBABILITY(2);

    final int code;

    Target(int code) {
        this.code = code;
    }

    static Target of(int code) {
        for (Target t : values()) {
            if (t.code == code) {
                return t;
            }
        }
        throw new IllegalArgumentException("unknown target " + code);
    }
}
