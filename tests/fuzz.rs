//! Bounded fuzz runs of every target (a few seconds each; `scripts/fuzz.sh TARGET MINUTES` runs
//! them longer), the inputs that once crashed (tests/data/fuzz/regressions), and a check that the
//! engine finds a planted bug. Needs scripts/setup.sh (ONNX Runtime and the real photos).
#[macro_use]
mod common;
#[path = "fuzz_support/mod.rs"]
mod fuzz_support;

use fuzz_support::engine::{fuzz, run_one, Budget, Rng, Target};
use fuzz_support::targets::{root, target};
use std::time::Duration;

/// Inputs per target in the test suite; CHIP_FUZZ_INPUTS overrides it.
fn budget() -> Budget {
    let inputs = std::env::var("CHIP_FUZZ_INPUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    Budget { max_inputs: inputs, max_time: Duration::from_secs(20) }
}

/// Runs the target within the budget; returns the number of distinct outcomes it reached.
fn bounded(name: &str) -> usize {
    let t = target(name).unwrap();
    let r = fuzz(t.as_ref(), 1, &budget(), |_| {});
    if let Some(f) = &r.failure {
        let dir = root().join("out/fuzz").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("failing-input");
        std::fs::write(&path, &f.input).unwrap();
        panic!("{name}: {} (input saved to {})", f.message, path.display());
    }
    eprintln!(
        "{name}: {} inputs in {:.1} s, {} accepted, {} outcomes, slowest {:.0} ms",
        r.inputs,
        r.elapsed.as_secs_f64(),
        r.accepted,
        r.outcomes,
        r.slowest.as_secs_f64() * 1e3
    );
    assert!(r.inputs >= 200, "{name}: only {} inputs ran", r.inputs);
    // The seeds are real inputs: the target must accept some of what it is given.
    assert!(r.accepted > 0, "{name}: no input was accepted, the seeds are not reaching the code");
    r.outcomes
}

#[test]
fn fuzz_fitfile() {
    require_setup!();
    let _ = bounded("fitfile");
}

#[test]
fn fuzz_stats() {
    require_setup!();
    // Structure-aware edits of the header, the identity and the values reach the loader's checks
    // one by one (13 outcomes with byte edits alone).
    let outcomes = bounded("stats");
    assert!(outcomes >= 25, "stats: only {outcomes} outcomes");
}

#[test]
fn fuzz_spec() {
    require_ort!();
    let _ = bounded("spec");
}

#[test]
fn fuzz_image() {
    require_setup!();
    let _ = bounded("image");
}

#[test]
fn fuzz_onnx() {
    require_setup!();
    let _ = bounded("onnx");
}

#[test]
fn fuzz_model() {
    require_setup!();
    let _ = bounded("model");
}

#[test]
fn fuzz_capi() {
    require_setup!();
    let _ = bounded("capi");
}

/// Every input that once failed, replayed: tests/data/fuzz/regressions/<target>-<what>.bin.
#[test]
fn regressions_stay_fixed() {
    require_setup!();
    let dir = root().join("tests/data/fuzz/regressions");
    let entries = std::fs::read_dir(&dir).expect("tests/data/fuzz/regressions");
    let (mut count, mut failed) = (0, Vec::new());
    for e in entries.flatten() {
        let path = e.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let t = target(name.split('-').next().unwrap()).unwrap_or_else(|| panic!("{name}: no target of that name"));
        let data = std::fs::read(&path).unwrap();
        if let Err(msg) = run_one(t.as_ref(), &data) {
            failed.push(format!("{name}: {msg}"));
        }
        count += 1;
    }
    assert!(failed.is_empty(), "{} of {count} regression inputs fail:\n{}", failed.len(), failed.join("\n"));
    assert!(count >= 6, "only {count} regression inputs in {}", dir.display());
    eprintln!("{count} regression inputs replayed");
}

/// A target with a bug three mutations deep: the engine must find it and hand back the input.
struct Planted;

impl Target for Planted {
    fn name(&self) -> &'static str {
        "planted"
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        vec![b"header: len=7 body".to_vec()]
    }
    fn run(&self, data: &[u8]) -> Result<String, String> {
        if data.len() > 4 && data[0] == b'h' {
            let n = data[4] as usize;
            // Bug: trusts a length byte when the header is altered.
            if data[1] != b'e' {
                let _ = &data[..n * 3];
            }
            return Ok("ok".into());
        }
        Ok("short".into())
    }
}

#[test]
fn engine_finds_a_planted_bug_and_keeps_its_input() {
    require_setup!();
    let r = fuzz(&Planted, 3, &Budget { max_inputs: 200_000, max_time: Duration::from_secs(30) }, |_| {});
    let f = r.failure.expect("the planted out-of-bounds slice was not found");
    assert!(f.message.starts_with("panic:") && f.message.contains("out of range"), "{}", f.message);
    assert!(run_one(&Planted, &f.input).is_err(), "the saved input does not reproduce the failure");
}

#[test]
fn mutations_are_seeded() {
    require_setup!();
    let mut a = Rng::new(5);
    let mut b = Rng::new(5);
    let mut x = b"the same input".to_vec();
    let mut y = x.clone();
    for _ in 0..100 {
        fuzz_support::engine::mutate_bytes(&mut a, &mut x, &[], 1 << 10);
        fuzz_support::engine::mutate_bytes(&mut b, &mut y, &[], 1 << 10);
    }
    assert_eq!(x, y);
}
