//! Long fuzz runs: `fuzz TARGET SECONDS [--seed N] [--out DIR]` (scripts/fuzz.sh wraps it).
//! Prints inputs/s as it goes and a summary; on a failure (panic, broken property, abort, fatal
//! signal, or an input that runs longer than the hang limit) the input is saved under DIR and the
//! exit status is non-zero.
#[path = "../tests/fuzz_support/mod.rs"]
mod fuzz_support;

use fuzz_support::engine::{fuzz, install_crash_handler, save_current_input, Budget, EXECUTED};
use fuzz_support::targets::{target, NAMES};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// One input running this long counts as a hang.
const HANG: Duration = Duration::from_secs(60);

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: fuzz TARGET SECONDS [--seed N] [--out DIR]   (targets: {})", NAMES.join(", "));
        std::process::exit(1)
    };
    if args.len() < 2 {
        usage();
    }
    let name = args[0].as_str();
    let Some(t) = target(name) else { usage() };
    let Ok(seconds) = args[1].parse::<f64>() else { usage() };
    let mut seed = std::process::id() as u64;
    let mut out = std::path::PathBuf::from("out/fuzz");
    let mut i = 2;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--seed", Some(v)) => seed = v.parse().unwrap_or_else(|_| usage()),
            ("--out", Some(v)) => out = v.into(),
            _ => usage(),
        }
        i += 2;
    }
    let dir = out.join(name);
    std::fs::create_dir_all(&dir).expect("create the output folder");
    let crash = dir.join(format!("crash-{seed}"));
    install_crash_handler(&crash);

    // Fixtures (a real fit) are made before the clock starts.
    let _ = t.seeds();
    let rss_start = rss_mib();
    std::thread::spawn(move || {
        let (mut last, mut since) = (EXECUTED.load(Ordering::Relaxed), Instant::now());
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let now = EXECUTED.load(Ordering::Relaxed);
            if now != last {
                (last, since) = (now, Instant::now());
            } else if since.elapsed() > HANG {
                save_current_input();
                eprintln!("fuzz: an input ran longer than {} s (hang); saved to {}", HANG.as_secs(), crash.display());
                std::process::exit(3);
            }
        }
    });
    println!("fuzz {name}: seed {seed}, {seconds} s");
    let budget = Budget { max_inputs: u64::MAX, max_time: Duration::from_secs_f64(seconds) };
    let mut rss_warm: Option<f64> = None;
    let report = fuzz(t.as_ref(), seed, &budget, |r| {
        // The first report comes after the caches and pools have warmed up.
        rss_warm.get_or_insert(rss_mib());
        println!(
            "  {:>9} inputs  {:>8.0} inputs/s  {} outcomes  corpus {}  rss {:.0} MiB",
            r.inputs,
            r.inputs as f64 / r.elapsed.as_secs_f64(),
            r.outcomes,
            r.corpus,
            rss_mib()
        );
    });
    let rss_end = rss_mib();
    let rate = report.inputs as f64 / report.elapsed.as_secs_f64();
    println!(
        "fuzz {name}: {} inputs in {:.0} s ({rate:.0} inputs/s), {} accepted, {} outcomes, slowest input {:.0} ms, rss {rss_start:.0} -> {rss_end:.0} MiB",
        report.inputs,
        report.elapsed.as_secs_f64(),
        report.accepted,
        report.outcomes,
        report.slowest.as_secs_f64() * 1e3
    );
    let out_dir = dir.join(format!("crash-{seed}"));
    if let Some(f) = report.failure {
        std::fs::write(&out_dir, &f.input).expect("save the failing input");
        eprintln!("fuzz {name}: FAILED after {} inputs: {}\ninput saved to {}", report.inputs, f.message, out_dir.display());
        std::process::exit(1);
    }
    // A leak shows as memory that keeps growing after warm-up; allocator slack does not reach this.
    if let Some(warm) = rss_warm {
        if rss_end > warm * 1.5 + 200.0 {
            eprintln!("fuzz {name}: memory grew from {warm:.0} to {rss_end:.0} MiB after warm-up (leak?)");
            std::process::exit(4);
        }
    }
}
