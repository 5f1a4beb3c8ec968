//! The `.chip` importance file: round trip and each way a file can be wrong, on real fits.
#[macro_use]
mod common;
use chip::error::Error;
use chip::engine::fit::{fit_layer, no_progress, FitOptions, Images};
use chip::engine::fitfile::{LayerFit, MAGIC, VERSION};
use chip::runtime::model::Model;
use chip::runtime::RuntimeOptions;
use chip_testmodels as testmodels;
use std::path::{Path, PathBuf};

fn options() -> RuntimeOptions {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("third_party/onnxruntime/lib/libonnxruntime.so");
    RuntimeOptions { ort_lib: lib.exists().then_some(lib), ..Default::default() }
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fitfile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn planted(seed: u64) -> (Model, String) {
    let p = testmodels::planted_cnn(3, 8, 2, true, seed);
    let model = Model::from_bytes(p.model.to_bytes().unwrap(), &options()).unwrap();
    (model, p.layer)
}

fn images(model: &Model, n: usize, seed: u64) -> Vec<f32> {
    let (w, h) = model.input_size().as_usize();
    let mut rng = chip::util::rng::Rng::new(seed);
    (0..n * model.input.channels * h * w)
        .map(|_| (rng.next_u64() >> 11) as f32 / (1u64 << 53) as f32 * 4.0 - 2.0)
        .collect()
}

fn small_fit(model: &Model, layer: &str) -> LayerFit {
    let data = images(model, 4, 1);
    let params = FitOptions { gates: 32, gate_batch: 16, ..Default::default() };
    fit_layer(model, layer, &Images::Tensor { data: &data, n: 4 }, &params, &no_progress).unwrap()
}

fn fit_file_msg(e: Error) -> String {
    match e {
        Error::FitFile { msg, .. } => msg,
        other => panic!("expected Error::FitFile, got {other:?}"),
    }
}

#[test]
fn round_trip_and_check_against_own_model() {
    require_ort!();
    let (model, layer) = planted(7);
    let fit = small_fit(&model, &layer);
    assert!(fit.weights.iter().any(|&w| w != 0.0), "a fit with all-zero weights does not exercise the format");
    let dir = tmp_dir("roundtrip");
    let path = dir.join("planted.chip");
    fit.save(&path).unwrap();
    let back = LayerFit::load(&path).unwrap();
    assert_eq!(back, fit);
    assert_eq!(back.weights.iter().map(|w| w.to_bits()).collect::<Vec<_>>(), fit.weights.iter().map(|w| w.to_bits()).collect::<Vec<_>>());
    back.check_against(&model).unwrap();
    // Only the file itself is in the folder: the atomic write left no temporary behind.
    let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("planted.chip")]);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], MAGIC);
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), VERSION);
}

#[test]
fn other_model_layer_or_shape_is_a_mismatch() {
    require_ort!();
    let (model, layer) = planted(7);
    let (other, _) = planted(8);
    assert_ne!(model.fingerprint, other.fingerprint);
    let fit = small_fit(&model, &layer);

    match fit.check_against(&other) {
        Err(Error::FitMismatch(msg)) => {
            println!("other model: {msg}");
            assert!(msg.contains("another model"), "{msg}");
            assert!(msg.contains(&fit.meta.model_fingerprint[..12]), "{msg}");
            assert!(msg.contains(&other.fingerprint[..12]), "{msg}");
        }
        r => panic!("expected FitMismatch, got {r:?}"),
    }

    let mut renamed = fit.clone();
    renamed.meta.layer = "no_such_layer".into();
    match renamed.check_against(&model) {
        Err(Error::FitMismatch(msg)) => {
            println!("other layer: {msg}");
            assert!(msg.contains("no_such_layer"), "{msg}");
        }
        r => panic!("expected FitMismatch, got {r:?}"),
    }

    let mut reshaped = fit.clone();
    reshaped.meta.channels += 1;
    reshaped.weights = vec![0.0; reshaped.meta.classes * reshaped.meta.channels];
    // The reshaped fit is a valid file on its own; only the model tells it is wrong.
    let dir = tmp_dir("reshaped");
    reshaped.save(&dir.join("r.chip")).unwrap();
    let reshaped = LayerFit::load(&dir.join("r.chip")).unwrap();
    match reshaped.check_against(&model) {
        Err(Error::FitMismatch(msg)) => {
            println!("other shape: {msg}");
            assert!(msg.contains(&layer) && msg.contains(&format!("{}", fit.meta.channels + 1)), "{msg}");
        }
        r => panic!("expected FitMismatch, got {r:?}"),
    }
}

#[test]
fn damaged_files_each_give_their_own_error() {
    require_ort!();
    let (model, layer) = planted(7);
    let fit = small_fit(&model, &layer);
    let bytes = fit.to_bytes().unwrap();
    let path = Path::new("x.chip");

    // Not a fit file at all.
    let msg = fit_file_msg(LayerFit::from_bytes(b"\x89PNG\r\n\x1a\n0000000000000000", path).unwrap_err());
    assert!(msg.contains("not a CHIP fit file"), "{msg}");
    let msg = fit_file_msg(LayerFit::from_bytes(b"", path).unwrap_err());
    assert!(msg.contains("not a CHIP fit file"), "{msg}");

    // Truncated at several places: each names expected and found lengths.
    for cut in [4, 12, 20, bytes.len() - 40, bytes.len() - 1] {
        let msg = fit_file_msg(LayerFit::from_bytes(&bytes[..cut], path).unwrap_err());
        println!("truncated to {cut}: {msg}");
        assert!(msg.contains("truncated"), "cut {cut}: {msg}");
        if cut >= 16 {
            assert!(msg.contains(&cut.to_string()), "cut {cut}: {msg}");
        }
    }

    // One altered byte anywhere after the version: in the header, the weights, the checksum.
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    for pos in [16 + header_len / 2, 16 + header_len + 1, bytes.len() - 3] {
        let mut altered = bytes.clone();
        altered[pos] ^= 0x10;
        let msg = fit_file_msg(LayerFit::from_bytes(&altered, path).unwrap_err());
        println!("byte {pos} altered: {msg}");
        assert!(msg.contains("altered or corrupt"), "byte {pos}: {msg}");
    }

    // A newer version.
    let mut newer = bytes.clone();
    newer[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
    match LayerFit::from_bytes(&newer, path) {
        Err(e @ Error::FitVersion { found, supported, .. }) => {
            assert_eq!((found, supported), (VERSION + 1, VERSION));
            println!("newer: {e}");
        }
        r => panic!("expected FitVersion, got {r:?}"),
    }

    // A consistent checksum over a wrong payload: bad JSON, wrong weight count, NaN weights.
    let reseal = |body: &[u8]| {
        use sha2::Digest;
        let mut v = body.to_vec();
        v.extend_from_slice(&sha2::Sha256::digest(body));
        v
    };
    let body = &bytes[..bytes.len() - 32];
    let mut bad_json = body.to_vec();
    bad_json[16] = b'[';
    let msg = fit_file_msg(LayerFit::from_bytes(&reseal(&bad_json), path).unwrap_err());
    assert!(msg.contains("malformed JSON header"), "{msg}");

    let short = &body[..body.len() - 4];
    let msg = fit_file_msg(LayerFit::from_bytes(&reseal(short), path).unwrap_err());
    println!("short weights: {msg}");
    assert!(msg.contains("expected classes × channels"), "{msg}");

    let mut nan = body.to_vec();
    let at = 16 + header_len + 4 * 5;
    nan[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let msg = fit_file_msg(LayerFit::from_bytes(&reseal(&nan), path).unwrap_err());
    assert!(msg.contains("non-finite weight"), "{msg}");

    // Missing file: an I/O error naming the path.
    match LayerFit::load(Path::new("no/such/file.chip")) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("file.chip")),
        r => panic!("expected Io, got {r:?}"),
    }

    // Writing refuses non-finite weights instead of producing an unloadable file.
    let mut bad = fit.clone();
    bad.weights[0] = f32::NAN;
    assert!(matches!(bad.to_bytes(), Err(Error::NonFinite(_))));
}
