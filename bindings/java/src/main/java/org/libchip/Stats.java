package org.libchip;

import com.sun.jna.Pointer;
import com.sun.jna.ptr.PointerByReference;
import java.nio.file.Path;
import org.libchip.ChipLibrary.SizeTByReference;

/**
 * Sufficient statistics of a fit collected on the images of one shard
 * ({@link Model#collectStats}). They are additive: merge the shards' statistics and
 * {@link Model#solve} them for the fit of all their images (equal to one {@link Model#fitLayer} over
 * all of them when {@link FitOptions#mosaics} is 0). They remember the model, layer, gates, seed,
 * target, views and mosaics they were collected with; merging or solving with any of these
 * different fails with {@link Status#FIT_MISMATCH}. merge must not race with other use.
 */
public final class Stats extends NativeHandle {
    Stats(Pointer p) {
        super(p, Native.LIB::chip_stats_free, "statistics");
    }

    /** Reads statistics written by {@link #save} (or {@code chip fit --stats-only}). */
    public static Stats load(Path path) {
        PointerByReference out = new PointerByReference();
        Native.check(Native.LIB.chip_stats_load(path.toString(), out));
        return new Stats(out.getValue());
    }

    /** Writes the statistics atomically: a failure leaves no file behind. */
    public void save(Path path) {
        use(p -> {
            Native.check(Native.LIB.chip_stats_save(p, path.toString()));
            return null;
        });
    }

    /** Adds other's statistics to these, which then hold the images of both; on failure these are unchanged. */
    public void merge(Stats other) {
        if (other == this) {
            throw Native.invalid("statistics cannot be merged into themselves");
        }
        use(p -> other.use(op -> {
            Native.check(Native.LIB.chip_stats_merge(p, op));
            return null;
        }));
    }

    /** The number of images (views and mosaics included) the statistics hold. */
    public long imageCount() {
        return use(p -> {
            SizeTByReference n = new SizeTByReference();
            Native.check(Native.LIB.chip_stats_image_count(p, n));
            return n.getValue();
        });
    }

    /** The name of the layer the statistics were collected at. */
    public String layerName() {
        return use(p -> Native.getString((buf, len, out) -> Native.LIB.chip_stats_layer_name(p, buf, len, out)));
    }
}
