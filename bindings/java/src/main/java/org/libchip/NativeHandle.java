package org.libchip;

import com.sun.jna.Pointer;
import java.lang.ref.Cleaner;
import java.lang.ref.Reference;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * Owner of one libchip object. close() frees it; a Cleaner frees one that was never closed, but
 * close early (try-with-resources): the objects hold large native buffers the GC does not see.
 * Like the C API, close must not race with other use of the same object.
 */
abstract class NativeHandle implements AutoCloseable {
    private static final Cleaner CLEANER = Cleaner.create();

    /** Must not refer to the handle, or the handle would never become unreachable. */
    private static final class Freer implements Runnable {
        private volatile Pointer pointer;
        private final Consumer<Pointer> free;

        Freer(Pointer pointer, Consumer<Pointer> free) {
            this.pointer = pointer;
            this.free = free;
        }

        @Override
        public synchronized void run() {
            Pointer p = pointer;
            pointer = null;
            if (p != null) {
                free.accept(p);
            }
        }
    }

    private final Freer freer;
    private final Cleaner.Cleanable cleanable;
    private final String what;

    NativeHandle(Pointer pointer, Consumer<Pointer> free, String what) {
        this.freer = new Freer(pointer, free);
        this.cleanable = CLEANER.register(this, freer);
        this.what = what;
    }

    /** Runs f on the native pointer, keeping this object reachable (so not freed) until f returns. */
    final <T> T use(Function<Pointer, T> f) {
        try {
            Pointer p = freer.pointer;
            if (p == null) {
                throw new ChipException(Status.NULL_POINTER, what + " is closed");
            }
            return f.apply(p);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** True once closed. */
    public final boolean isClosed() {
        return freer.pointer == null;
    }

    /** Frees the native object; closing again does nothing. */
    @Override
    public final void close() {
        cleanable.clean();
    }
}
