package org.libchip;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import java.util.function.Function;

/** Options of a fit; a new instance holds the library's defaults. Setters return this. */
public final class FitOptions {
    private long gates;
    private double lambdaRel;
    private double sigma2Rel;
    private long seed;
    private long gateBatch;
    private long imageBatch;
    private long maxIter;
    private double rho;
    private int[] classes = new int[0];
    private Target target;
    private boolean intercept;
    private boolean nonneg;
    private long augment;
    private long mosaics;
    private ProgressListener progress;

    public FitOptions() {
        ChipLibrary.CFitOptions c = defaults();
        gates = c.gates.longValue();
        lambdaRel = c.lambda_rel;
        sigma2Rel = c.sigma2_rel;
        seed = c.seed;
        gateBatch = c.gate_batch.longValue();
        imageBatch = c.image_batch.longValue();
        maxIter = c.max_iter.longValue();
        rho = c.rho;
        target = Target.of(c.target);
        intercept = c.intercept != 0;
        nonneg = c.nonneg != 0;
        augment = c.augment.longValue();
        mosaics = c.mosaics.longValue();
    }

    private static ChipLibrary.CFitOptions defaults() {
        ChipLibrary.CFitOptions c = new ChipLibrary.CFitOptions();
        c.struct_size = Native.size(c.size());
        Native.check(Native.LIB.chip_fit_options_default(c));
        return c;
    }

    /** Number of random gate vectors. */
    public FitOptions gates(long gates) {
        this.gates = gates;
        return this;
    }

    /** Sparsity weight relative to the smallest lambda that zeroes a class. */
    public FitOptions lambdaRel(double lambdaRel) {
        this.lambdaRel = lambdaRel;
        return this;
    }

    /** sigma^2 of the gate proximity relative to the number of channels. */
    public FitOptions sigma2Rel(double sigma2Rel) {
        this.sigma2Rel = sigma2Rel;
        return this;
    }

    /** Seed of the gate generator (an unsigned 64-bit value). */
    public FitOptions seed(long seed) {
        this.seed = seed;
        return this;
    }

    public FitOptions gateBatch(long gateBatch) {
        this.gateBatch = gateBatch;
        return this;
    }

    public FitOptions imageBatch(long imageBatch) {
        this.imageBatch = imageBatch;
        return this;
    }

    /** ADMM iteration limit per class. */
    public FitOptions maxIter(long maxIter) {
        this.maxIter = maxIter;
        return this;
    }

    /** ADMM penalty; 0 picks one from the scale of the problem. */
    public FitOptions rho(double rho) {
        this.rho = rho;
        return this;
    }

    /** Class ids to solve; none for all. */
    public FitOptions classes(int... classes) {
        this.classes = classes.clone();
        return this;
    }

    /** What each class's linear model regresses. */
    public FitOptions target(Target target) {
        this.target = java.util.Objects.requireNonNull(target, "target");
        return this;
    }

    /** An unpenalised per-class intercept. */
    public FitOptions intercept(boolean intercept) {
        this.intercept = intercept;
        return this;
    }

    /** Weights constrained to be &gt;= 0. */
    public FitOptions nonneg(boolean nonneg) {
        this.nonneg = nonneg;
        return this;
    }

    /** Augmented views (random resized crops and flips) per image. */
    public FitOptions augment(long augment) {
        this.augment = augment;
        return this;
    }

    /**
     * 2x2 mosaics per image, tiled from four of the images of one call: only with 0 do merged
     * statistics of several shards equal one fit over all their images.
     */
    public FitOptions mosaics(long mosaics) {
        this.mosaics = mosaics;
        return this;
    }

    /** Progress listener, or null. */
    public FitOptions progress(ProgressListener progress) {
        this.progress = progress;
        return this;
    }

    public long gates() {
        return gates;
    }

    public double lambdaRel() {
        return lambdaRel;
    }

    public double sigma2Rel() {
        return sigma2Rel;
    }

    public long seed() {
        return seed;
    }

    public Target target() {
        return target;
    }

    public long mosaics() {
        return mosaics;
    }

    /** Fills the C options, runs the fit and rethrows what the listener threw. */
    <T> T run(Function<ChipLibrary.CFitOptions, T> fit) {
        for (long v : new long[] {gates, gateBatch, imageBatch, maxIter, augment, mosaics}) {
            if (v < 0) {
                throw Native.invalid("a count in the fit options is negative");
            }
        }
        ChipLibrary.CFitOptions c = defaults();
        c.gates = Native.size(gates);
        c.lambda_rel = lambdaRel;
        c.sigma2_rel = sigma2Rel;
        c.seed = seed;
        c.gate_batch = Native.size(gateBatch);
        c.image_batch = Native.size(imageBatch);
        c.max_iter = Native.size(maxIter);
        c.rho = rho;
        c.target = target.code;
        c.intercept = intercept ? 1 : 0;
        c.nonneg = nonneg ? 1 : 0;
        c.augment = Native.size(augment);
        c.mosaics = Native.size(mosaics);
        Memory ids = sizeArray(classes);
        c.classes = ids;
        c.class_count = Native.size(classes.length);
        Throwable[] thrown = new Throwable[1];
        ProgressListener listener = progress;
        ChipLibrary.ProgressCallback callback = null;
        if (listener != null) {
            callback = (Pointer userData, int kind, ChipLibrary.SizeT done, ChipLibrary.SizeT total) -> {
                try {
                    return listener.onProgress(ProgressKind.of(kind), done.longValue(), total.longValue()) ? 0 : 1;
                } catch (Throwable t) {
                    // Nothing may unwind into libchip: cancel, and rethrow once the fit returns.
                    synchronized (thrown) {
                        thrown[0] = t;
                    }
                    return 1;
                }
            };
            c.progress = callback;
        }
        try {
            return fit.apply(c);
        } catch (ChipException e) {
            Throwable t;
            synchronized (thrown) {
                t = thrown[0];
            }
            if (t instanceof RuntimeException r) {
                r.addSuppressed(e);
                throw r;
            }
            if (t instanceof Error err) {
                err.addSuppressed(e);
                throw err;
            }
            if (t != null) {
                throw new RuntimeException("the progress listener failed", t);
            }
            throw e;
        } finally {
            java.lang.ref.Reference.reachabilityFence(callback);
            java.lang.ref.Reference.reachabilityFence(ids);
            java.lang.ref.Reference.reachabilityFence(c);
        }
    }

    /** A C array of size_t, or null for none. */
    static Memory sizeArray(int[] values) {
        if (values.length == 0) {
            return null;
        }
        Memory m = new Memory((long) values.length * com.sun.jna.Native.SIZE_T_SIZE);
        for (int i = 0; i < values.length; i++) {
            if (values[i] < 0) {
                throw Native.invalid("class id " + values[i] + " is negative");
            }
            if (com.sun.jna.Native.SIZE_T_SIZE == 8) {
                m.setLong(8L * i, values[i]);
            } else {
                m.setInt(4L * i, values[i]);
            }
        }
        return m;
    }
}
