package org.libchip;

/**
 * Progress of a fit. Called possibly from threads other than the caller's, never two at once.
 * Return false to cancel: the fit then fails with {@link Status#CANCELLED}. An exception thrown
 * here cancels the fit too and is rethrown by the fit call.
 */
@FunctionalInterface
public interface ProgressListener {
    boolean onProgress(ProgressKind kind, long done, long total);
}
