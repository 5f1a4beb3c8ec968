package org.libchip;

/** The status codes of libchip (chip_status). */
public enum Status {
    OK(0),
    INVALID_ARGUMENT(1),
    NULL_POINTER(2),
    INVALID_UTF8(3),
    BUFFER_TOO_SMALL(4),
    IO(5),
    ORT_NOT_FOUND(6),
    ORT(7),
    MODEL(8),
    UNKNOWN_LAYER(9),
    IMAGE(10),
    FIT_FILE(11),
    FIT_VERSION(12),
    FIT_MISMATCH(13),
    NON_FINITE(14),
    CANCELLED(15),
    PANIC(16),
    /** A code this binding does not know (a newer library). */
    UNKNOWN(-1);

    private final int code;

    Status(int code) {
        this.code = code;
    }

    /** The C value. */
    public int code() {
        return code;
    }

    /** The status of a C value; UNKNOWN for values this binding does not know. */
    public static Status of(int code) {
        for (Status s : values()) {
            if (s.code == code) {
                return s;
            }
        }
        return UNKNOWN;
    }

    /** libchip's description of the status. */
    public String description() {
        return ChipLibrary.LIB.chip_status_str(code);
    }
}
