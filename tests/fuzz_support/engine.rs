//! A seeded mutation fuzzer that runs on the stable toolchain: no instrumentation, so inputs that
//! reach a new outcome (a new kind of error, or success) join the corpus as a cheap stand-in for
//! coverage. Shared by `tests/fuzz.rs` (bounded runs) and `examples/fuzz.rs` (long runs).
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// splitmix64: small, fast, and the same sequence on every platform.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values at the edges of integer types, where size and offset arithmetic goes wrong.
pub const INTERESTING: &[u64] = &[
    0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 100, 127, 128, 255, 256, 512, 1000, 1024, 4095, 4096,
    16384, 16385, 32767, 32768, 65535, 65536, 1 << 24, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff,
    1 << 32, 1 << 40, 1 << 48, 0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000, u64::MAX - 1, u64::MAX,
];

/// Applies 1 to 8 stacked byte-level mutations; `pool` supplies splice material.
pub fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>], max_len: usize) {
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        let len = data.len();
        match rng.below(12) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                data.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                data.drain(i..i + n);
            }
            4 if len > 0 => {
                // Duplicate a range in place (repeated chunks, records, markers).
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                let chunk = data[i..i + n].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
            5 if !pool.is_empty() => {
                // Splice: our head with another input's tail.
                let other = rng.pick(pool);
                if !other.is_empty() {
                    let cut = rng.below(len + 1);
                    let from = rng.below(other.len());
                    data.truncate(cut);
                    data.extend_from_slice(&other[from..]);
                }
            }
            6 if len > 0 => data.truncate(rng.below(len)),
            7 | 8 if len > 0 => {
                // An interesting integer, 1 to 8 bytes, either endianness.
                let width = *rng.pick(&[1usize, 2, 4, 8]);
                let mut v = *rng.pick(INTERESTING);
                if rng.chance(4) {
                    v = v.wrapping_neg();
                }
                let bytes = if rng.chance(2) { v.to_le_bytes()[..width].to_vec() } else { v.to_be_bytes()[8 - width..].to_vec() };
                let i = rng.below(len);
                let end = (i + bytes.len()).min(len);
                data[i..end].copy_from_slice(&bytes[..end - i]);
            }
            9 if len > 0 => {
                // Small arithmetic on one byte (lengths off by a few).
                let i = rng.below(len);
                let d = 1 + rng.below(16) as u8;
                data[i] = if rng.chance(2) { data[i].wrapping_add(d) } else { data[i].wrapping_sub(d) };
            }
            10 if len > 1 => {
                // Copy a range over another place.
                let a = rng.below(len);
                let b = rng.below(len);
                let n = 1 + rng.below((len - a.max(b)).min(64));
                let chunk = data[a..a + n].to_vec();
                data[b..b + n].copy_from_slice(&chunk);
            }
            _ => {
                let n = 1 + rng.below(32);
                for _ in 0..n {
                    data.push(rng.next() as u8);
                }
            }
        }
    }
    data.truncate(max_len);
}

/// One fuzz target: real seed inputs, optional structure-aware mutations, and the checks on one input.
pub trait Target {
    fn name(&self) -> &'static str;
    fn seeds(&self) -> Vec<Vec<u8>>;
    /// Largest input the mutator makes.
    fn max_len(&self) -> usize {
        1 << 20
    }
    /// Makes the next input from a corpus entry; the default mutates bytes. Targets whose format
    /// has a checksum or a known structure override it so that mutations get past the first check.
    fn mutate(&self, rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>]) {
        mutate_bytes(rng, data, pool, self.max_len());
    }
    /// Runs one input. Ok(outcome) names what happened (used to grow the corpus: digits are
    /// stripped, so "12 bytes" and "13 bytes" count as one outcome). Err is a broken property
    /// (for example a result that does not round-trip); a panic is caught by the engine.
    fn run(&self, data: &[u8]) -> Result<String, String>;
}

/// The input being run, for the crash handler of the long-running driver (see `install_crash_handler`).
static CURRENT_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static CURRENT_LEN: AtomicUsize = AtomicUsize::new(0);
/// Inputs run so far in this process (the driver's watchdog reads it to tell a hang).
pub static EXECUTED: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
pub struct Failure {
    pub input: Vec<u8>,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub inputs: u64,
    pub elapsed: Duration,
    /// Distinct outcomes seen (digits stripped).
    pub outcomes: usize,
    /// Inputs whose outcome was "ok" (accepted), to show mutations got deep.
    pub accepted: u64,
    pub corpus: usize,
    pub slowest: Duration,
    pub failure: Option<Failure>,
}

pub struct Budget {
    pub max_inputs: u64,
    pub max_time: Duration,
}

fn outcome_key(s: &str) -> String {
    let mut k: String = s.chars().filter(|c| !c.is_ascii_digit()).collect();
    k.truncate(160);
    k
}

/// Runs one input with the panic caught: Ok(outcome) or Err(failure message).
pub fn run_one(target: &dyn Target, data: &[u8]) -> Result<String, String> {
    CURRENT_PTR.store(data.as_ptr() as *mut u8, Ordering::SeqCst);
    CURRENT_LEN.store(data.len(), Ordering::SeqCst);
    let r = catch_unwind(AssertUnwindSafe(|| target.run(data)));
    EXECUTED.fetch_add(1, Ordering::Relaxed);
    match r {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(broken)) => Err(format!("property broken: {broken}")),
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown payload".into());
            Err(format!("panic: {msg}"))
        }
    }
}

/// Runs the seeds, then mutated inputs until the budget is spent or an input fails.
pub fn fuzz(target: &dyn Target, seed: u64, budget: &Budget, mut progress: impl FnMut(&Report)) -> Report {
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    let mut report = Report::default();
    let mut seen = std::collections::HashSet::new();
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    const MAX_CORPUS: usize = 512;
    let mut last_progress = Instant::now();
    let seeds = target.seeds();
    assert!(!seeds.is_empty(), "target {} has no seeds", target.name());
    let mut queue: std::collections::VecDeque<Vec<u8>> = seeds.iter().cloned().collect();
    while report.inputs < budget.max_inputs && start.elapsed() < budget.max_time {
        let input = match queue.pop_front() {
            Some(s) => s,
            None => {
                // Mostly mutate seeds and recent finds; sometimes mutate a mutation again.
                let base = if corpus.is_empty() || rng.chance(3) { rng.pick(&seeds) } else { rng.pick(&corpus) };
                let mut d = base.clone();
                target.mutate(&mut rng, &mut d, &corpus);
                d
            }
        };
        let t = Instant::now();
        let r = run_one(target, &input);
        report.slowest = report.slowest.max(t.elapsed());
        report.inputs += 1;
        match r {
            Ok(outcome) => {
                if outcome.starts_with("ok") {
                    report.accepted += 1;
                }
                if seen.insert(outcome_key(&outcome)) {
                    if corpus.len() >= MAX_CORPUS {
                        let i = rng.below(corpus.len());
                        corpus.swap_remove(i);
                    }
                    corpus.push(input);
                }
            }
            Err(message) => {
                report.failure = Some(Failure { input, message });
                break;
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(10) {
            last_progress = Instant::now();
            report.elapsed = start.elapsed();
            report.outcomes = seen.len();
            report.corpus = corpus.len();
            progress(&report);
        }
    }
    report.elapsed = start.elapsed();
    report.outcomes = seen.len();
    report.corpus = corpus.len();
    report
}

/// The path the crash handler writes the input to (NUL-terminated, set once by the driver).
static CRASH_PATH: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn on_fatal_signal(sig: libc::c_int) {
    // Only async-signal-safe calls: open, write, close, signal, raise.
    let path = CRASH_PATH.load(Ordering::SeqCst);
    if !path.is_null() {
        unsafe {
            let fd = libc::open(path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644);
            if fd >= 0 {
                let p = CURRENT_PTR.load(Ordering::SeqCst);
                let n = CURRENT_LEN.load(Ordering::SeqCst);
                if !p.is_null() {
                    let _ = libc::write(fd, p as *const libc::c_void, n);
                }
                libc::close(fd);
            }
        }
        let msg = b"\nfuzz: fatal signal; the input being run was saved\n";
        unsafe { libc::write(2, msg.as_ptr() as *const libc::c_void, msg.len()) };
    }
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// On SIGSEGV, SIGBUS, SIGILL, SIGFPE or SIGABRT (an abort no panic boundary catches, such as a
/// failed allocation) the input being run is written to `path` before the process dies.
pub fn install_crash_handler(path: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("crash path without NUL");
    CRASH_PATH.store(c.into_raw(), Ordering::SeqCst);
    for sig in [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGABRT] {
        unsafe { libc::signal(sig, on_fatal_signal as *const () as libc::sighandler_t) };
    }
}

/// Writes the input being run to the crash path (the watchdog calls it before aborting on a hang).
pub fn save_current_input() {
    let path = CRASH_PATH.load(Ordering::SeqCst);
    if path.is_null() {
        return;
    }
    let p = CURRENT_PTR.load(Ordering::SeqCst);
    let n = CURRENT_LEN.load(Ordering::SeqCst);
    let bytes = if p.is_null() { &[][..] } else { unsafe { std::slice::from_raw_parts(p, n) } }.to_vec();
    let path = unsafe { std::ffi::CStr::from_ptr(path) }.to_str().unwrap_or("").to_string();
    let _ = std::fs::write(path, bytes);
}
