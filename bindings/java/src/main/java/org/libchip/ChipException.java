package org.libchip;

/** A failed libchip call: its status (and C status code) and libchip's message. */
public class ChipException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final Status status;
    private final int code;

    public ChipException(int code, String message) {
        super(message == null || message.isEmpty() ? Status.of(code).name() : message);
        this.code = code;
        this.status = Status.of(code);
    }

    public ChipException(Status status, String message) {
        this(status.code(), message);
    }

    public Status status() {
        return status;
    }

    /** The chip_status value. */
    public int code() {
        return code;
    }
}
