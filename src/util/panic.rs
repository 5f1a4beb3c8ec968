//! Catching a panic of a dependency without its message reaching stderr: the error that replaces
//! it is the one the caller sees.
use std::cell::Cell;
use std::sync::Once;

thread_local! {
    static QUIET: Cell<u32> = const { Cell::new(0) };
}
static HOOK: Once = Once::new();

/// Wraps the panic hook in place (once) so that it stays silent on threads inside [`catch_quiet`]
/// and calls the previous hook everywhere else.
fn install() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(|q| q.get()) == 0 {
                previous(info);
            }
        }));
    });
}

/// `catch_unwind` whose panic prints nothing; Err holds the panic's message.
pub fn catch_quiet<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    install();
    QUIET.with(|q| q.set(q.get() + 1));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(q.get() - 1));
    r.map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into())
    })
}
