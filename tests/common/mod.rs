//! What the integration tests share: the two layers. The fast layer needs only ONNX Runtime (the
//! test models are built in memory by `chip_testmodels`); the data layer needs what
//! `scripts/setup.sh` downloads (the EfficientNet-Lite0 model, the photos, the boxes). On a checkout
//! without them a test skips with one line on stderr; with `CHIP_REQUIRE_SETUP=1` (set by
//! `scripts/test.sh`) a missing piece fails the test instead, so CI cannot skip silently.
#![allow(dead_code)]
use std::io::Write;
use std::path::Path;

/// Why the tests of a layer cannot run here, or None when they can.
pub fn missing(data: bool) -> Option<String> {
    if let Err(e) = chip::runtime::ensure_ort(None) {
        return Some(format!("ONNX Runtime not found ({e})"));
    }
    if data {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for f in ["data/models/efficientnet_lite0.onnx", "data/index.json", "data/boxes.json"] {
            if !root.join(f).exists() {
                return Some(format!("{f} is missing"));
            }
        }
    }
    None
}

/// True when the layer can run; otherwise prints why and returns false (panics under CHIP_REQUIRE_SETUP=1).
pub fn ready(data: bool, test: &str) -> bool {
    ready_with(data, &[], test)
}

/// [`ready`], and the given files (relative to the repository root) that scripts/setup.sh provides.
pub fn ready_with(data: bool, files: &[&str], test: &str) -> bool {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let why = missing(data).or_else(|| files.iter().find(|f| !root.join(f).exists()).map(|f| format!("{f} is missing")));
    let Some(why) = why else { return true };
    if std::env::var_os("CHIP_REQUIRE_SETUP").is_some_and(|v| v == "1") {
        panic!("{test}: {why}, and CHIP_REQUIRE_SETUP=1: run scripts/setup.sh");
    }
    // Straight to stderr: the test harness captures eprintln! of passing tests.
    let _ = writeln!(std::io::stderr(), "{test}: skipped: run scripts/setup.sh ({why})");
    false
}

/// Returns from the test unless the data of scripts/setup.sh (and ONNX Runtime) are there, and the
/// files named, if any (relative to the repository root).
#[macro_export]
macro_rules! require_setup {
    () => {
        if !$crate::common::ready(true, module_path!()) {
            return;
        }
    };
    ($($file:expr),+ $(,)?) => {
        if !$crate::common::ready_with(true, &[$($file),+], module_path!()) {
            return;
        }
    };
}

/// Returns from the test unless ONNX Runtime can be loaded.
#[macro_export]
macro_rules! require_ort {
    () => {
        if !$crate::common::ready(false, module_path!()) {
            return;
        }
    };
}
