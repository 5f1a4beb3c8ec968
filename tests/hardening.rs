//! Hostile and careless input through the `chip` binary and the library: each case gives one clear
//! `chip: ...` line (or a library error) and status 1, and leaves nothing behind. Needs
//! scripts/setup.sh to have run (the EfficientNet-Lite0 model and the photos).
#[macro_use]
mod common;
use chip::engine::fitfile::LayerFit;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model() -> PathBuf {
    root().join("data/models/efficientnet_lite0.onnx")
}

fn ort_lib() -> PathBuf {
    root().join("third_party/onnxruntime/lib/libonnxruntime.so")
}

/// `chip` in `dir` with CHIP_ORT_LIB set to the project's ONNX Runtime.
fn chip_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chip")).current_dir(dir).args(args).env("CHIP_ORT_LIB", ort_lib()).output().expect("run chip")
}

fn chip(args: &[&str]) -> Output {
    chip_in(&root(), args)
}

fn ok(args: &[&str]) {
    let out = chip(args);
    assert!(out.status.success(), "chip {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Status 1 and exactly one `chip: ` line containing `needle` on stderr; returns it.
fn fails_out(out: Output, args: &[&str], needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "chip {args:?}: status {:?}, stderr {stderr}", out.status);
    assert!(stderr.starts_with("chip: ") && stderr.lines().count() == 1, "chip {args:?}: {stderr}");
    assert!(stderr.contains(needle), "chip {args:?}: expected '{needle}' in: {stderr}");
    stderr
}

fn fails(args: &[&str], needle: &str) -> String {
    fails_out(chip(args), args, needle)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chip-hard-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const PHOTO: &str = "data/images/skimage/coffee.png";
const HEAD: &str = "/_swish_1/Clip_output_0";

/// A list file naming one photo.
fn one_photo_list(dir: &Path) -> PathBuf {
    let list = dir.join("one.txt");
    std::fs::write(&list, format!("{}\n", s(&root().join(PHOTO)))).unwrap();
    list
}

/// A two-class, four-gate conv-head fit and the statistics of the same photo (shared).
fn small() -> &'static (PathBuf, PathBuf) {
    static F: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tmp("small");
        let list = one_photo_list(&dir);
        let fit = dir.join("head.chip");
        let stats = dir.join("shard.stats");
        let m = model();
        let common = ["--model", s(&m), "--layer", HEAD, "--images", s(&list), "--gates", "4", "--mosaics", "0"];
        ok(&[&["fit"][..], &common, &["--classes", "1,2", "--out", s(&fit)]].concat());
        ok(&[&["fit"][..], &common, &["--stats-only", "--out", s(&stats)]].concat());
        (fit, stats)
    })
}

#[test]
fn augment_and_mosaics_are_bounded_and_say_the_bound() {
    require_setup!();
    let dir = tmp("augment");
    let list = one_photo_list(&dir);
    let out = dir.join("a.chip");
    let m = model();
    let base = ["fit", "--model", s(&m), "--layer", HEAD, "--images", s(&list), "--gates", "4", "--out", s(&out)];
    fails(&[&base[..], &["--augment", "18446744073709551615"]].concat(), "at most 256");
    fails(&[&base[..], &["--augment", "4611686018427387904", "--stats-only"]].concat(), "augment 4611686018427387904");
    fails(&[&base[..], &["--mosaics", "1000000"]].concat(), "mosaics 1000000 is too many mosaics per image (at most 256");
    assert!(!out.exists());
}

#[test]
fn files_that_are_not_regular_are_refused_by_kind() {
    require_setup!();
    let dir = tmp("kinds");
    let fifo = dir.join("f");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // A device or FIFO used to be read until memory ran out, or forever.
    fails(&["inspect", "--fit", "/dev/zero"], "is a device");
    fails(&["inspect", "--fit", s(&fifo)], "is a FIFO");
    let out = dir.join("x.chip");
    fails(&["merge", "--model", s(&model()), "--out", s(&out), "/dev/zero"], "is a device");
    fails(&["merge", "--model", s(&model()), "--out", s(&out), s(&fifo)], "is a FIFO");
    fails(&["fit", "--model", s(&model()), "--layer", HEAD, "--images", "/dev/zero", "--gates", "4", "--out", s(&out)], "is a device");
    // A folder or device given as a model or an image says so, not "file not found".
    fails(&["layers", "--model", s(&dir)], "is a folder");
    fails(&["layers", "--model", "/dev/zero"], "is a device");
    let (fit, _) = small();
    let ex = dir.join("ex");
    fails(&["explain", "--model", s(&model()), "--fit", s(fit), "--out", s(&ex), "/dev/zero"], "the image is a device");
    fails(&["explain", "--model", s(&model()), "--fit", s(fit), "--out", s(&ex), s(&dir)], "the image is a folder");
    // A fit file is read no further than its header declares: trailing data is refused.
    let mut long = std::fs::read(fit).unwrap();
    long.extend(std::iter::repeat_n(0u8, 1 << 20));
    let long_fit = dir.join("long.chip");
    std::fs::write(&long_fit, &long).unwrap();
    fails(&["inspect", "--fit", s(&long_fit)], "altered or corrupt");
}

/// The statistics file `stats` with the f64 header word `i` set to `v` and its checksum renewed.
fn forge_stats(stats: &Path, i: usize, v: u64, out: &Path) {
    use sha2::Digest;
    let mut b = std::fs::read(stats).unwrap();
    b[12 + 8 * i..20 + 8 * i].copy_from_slice(&v.to_le_bytes());
    let body = b.len() - 32;
    let d = sha2::Sha256::digest(&b[..body]);
    b[body..].copy_from_slice(&d);
    std::fs::write(out, b).unwrap();
}

#[test]
fn statistics_that_cannot_be_used_are_refused_at_load() {
    require_setup!();
    let dir = tmp("badstats");
    let (_, stats) = small();
    let out = dir.join("x.chip");
    for (word, value, needle) in [
        (4, f64::NAN.to_bits(), "sigma2_rel NaN"),
        (7, f64::NAN.to_bits(), "gate-proximity sum of NaN"),
        (2, 0, "0 gates"),
    ] {
        let bad = dir.join(format!("w{word}.stats"));
        forge_stats(stats, word, value, &bad);
        fails(&["merge", "--model", s(&model()), "--classes", "1,2", "--out", s(&out), s(&bad)], needle);
        assert!(!out.exists(), "{needle}: a fit was written");
    }
}

#[test]
fn an_output_that_is_an_input_is_refused() {
    require_setup!();
    let dir = tmp("same");
    let (_, stats) = small();
    let shard = dir.join("s1.stats");
    std::fs::copy(stats, &shard).unwrap();
    let before = std::fs::read(&shard).unwrap();
    fails(&["merge", "--model", s(&model()), "--classes", "1,2", "--out", s(&shard), s(&shard)], "is the statistics file");
    // Another spelling of the same file (a link) is the same file.
    let link = dir.join("link.stats");
    std::os::unix::fs::symlink(&shard, &link).unwrap();
    fails(&["merge", "--model", s(&model()), "--classes", "1,2", "--out", s(&link), s(&shard)], "writing it would replace the input");
    assert_eq!(std::fs::read(&shard).unwrap(), before);
    let list = one_photo_list(&dir);
    let text = std::fs::read(&list).unwrap();
    let m = model();
    let args = ["fit", "--model", s(&m), "--layer", HEAD, "--images", s(&list), "--gates", "4", "--stats-only", "--out", s(&list)];
    fails(&args, "is the image list");
    assert_eq!(std::fs::read(&list).unwrap(), text);
}

#[test]
fn a_shard_given_twice_is_refused() {
    require_setup!();
    let dir = tmp("twice");
    let (_, stats) = small();
    let out = dir.join("x.chip");
    fails(&["merge", "--model", s(&model()), "--classes", "1,2", "--out", s(&out), s(stats), s(stats)], "is given twice");
    let copy = dir.join("copy.stats");
    std::fs::copy(stats, &copy).unwrap();
    fails(&["merge", "--model", s(&model()), "--classes", "1,2", "--out", s(&out), s(stats), s(&copy)], "hold the same statistics");
    assert!(!out.exists());
}

#[test]
fn an_explicit_ort_lib_is_the_only_one_tried() {
    require_setup!();
    // CHIP_ORT_LIB (set by chip_in) names a good library: the explicit path must still win.
    let out = fails(&["--ort-lib", "/nonexistent/libonnxruntime.so", "layers", "--model", s(&model())], "/nonexistent/libonnxruntime.so");
    assert!(!out.contains("third_party"), "{out}");
    let out = Command::new(env!("CARGO_BIN_EXE_chip"))
        .args(["--ort-lib", "/etc/passwd", "layers", "--model", s(&model())])
        .env_remove("CHIP_ORT_LIB")
        .output()
        .unwrap();
    let msg = fails_out(out, &["--ort-lib", "/etc/passwd"], "/etc/passwd");
    // The one place tried: no list of others after it.
    let tried = msg.split("tried: ").nth(1).unwrap_or_default();
    assert!(!msg.contains("third_party") && !tried.contains(';'), "{msg}");
}

/// A copy of the small fit with `edit` applied to it (a valid checksum).
fn forged_fit(name: &str, edit: impl FnOnce(&mut LayerFit)) -> PathBuf {
    let (fit, _) = small();
    let mut f = LayerFit::load(fit).unwrap();
    edit(&mut f);
    let path = tmp(name).join("forged.chip");
    // Written by hand: `save` refuses nothing it should not, but the header must stay as given.
    std::fs::write(&path, to_bytes_unchecked(&f)).unwrap();
    path
}

fn to_bytes_unchecked(f: &LayerFit) -> Vec<u8> {
    use sha2::Digest;
    let header = serde_json::to_vec(&f.meta).unwrap();
    let mut out = b"CHIPFIT\0".to_vec();
    out.extend_from_slice(&chip::engine::fitfile::VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    for w in &f.weights {
        out.extend_from_slice(&w.to_le_bytes());
    }
    let d = sha2::Sha256::digest(&out);
    out.extend_from_slice(&d);
    out
}

#[test]
fn weights_whose_maps_overflow_are_refused() {
    require_setup!();
    let forged = forged_fit("huge", |f| f.weights.iter_mut().for_each(|w| *w = 3e38));
    let out = tmp("huge-out").join("ex");
    fails(&["explain", "--model", s(&model()), "--fit", s(&forged), "--out", s(&out), "--class", "1", PHOTO], "beyond the float range");
    let e = LayerFit::load(&forged).unwrap_err();
    assert!(matches!(e, chip::Error::FitFile { .. }), "{e}");
}

#[test]
fn a_failed_explain_leaves_no_output_folder() {
    require_setup!();
    let (fit, _) = small();
    let dir = tmp("noout");
    let bad = dir.join("empty.png");
    std::fs::write(&bad, b"").unwrap();
    let mut cut = std::fs::read(root().join("data/images/mpl/grace_hopper.jpg")).unwrap();
    cut.truncate(cut.len() / 2);
    let truncated = dir.join("cut.jpg");
    std::fs::write(&truncated, cut).unwrap();
    for img in [&bad, &truncated] {
        let out = dir.join("out/nested");
        fails(&["explain", "--model", s(&model()), "--fit", s(fit), "--out", s(&out), s(img)], "image");
        assert!(!dir.join("out").exists(), "{}: the output folder was left behind", img.display());
    }
    // A folder that existed before stays.
    let existing = dir.join("existing");
    std::fs::create_dir(&existing).unwrap();
    fails(&["explain", "--model", s(&model()), "--fit", s(fit), "--out", s(&existing), s(&bad)], "image");
    assert!(existing.is_dir());
}

#[test]
fn control_characters_from_files_are_escaped() {
    require_setup!();
    let forged = forged_fit("ansi", |f| f.meta.layer = "\x1b[2J\x1b[31mevil\u{202E}txt.exe".into());
    let out = tmp("ansi-out").join("ex");
    let msg = fails(&["explain", "--model", s(&model()), "--fit", s(&forged), "--out", s(&out), PHOTO], "does not exist in this model");
    assert!(!msg.contains('\x1b') && !msg.contains('\u{202E}'), "{msg:?}");
    assert!(msg.contains("\\u{1b}[31mevil\\u{202e}txt.exe"), "{msg:?}");
}

/// CRC-32 (IEEE) of PNG chunks.
fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

#[test]
fn an_image_too_large_to_decode_is_refused_from_its_header() {
    require_setup!();
    // 16384² 16-bit RGBA: 2 GiB of pixels (it peaked at 3 GB before failing). Only the header is
    // real: the refusal must come before the decoder allocates or reads pixels.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&16384u32.to_be_bytes());
    ihdr.extend_from_slice(&16384u32.to_be_bytes());
    ihdr.extend_from_slice(&[16, 6, 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(&mut png, b"IDAT", &[0x78, 0x01]);
    png_chunk(&mut png, b"IEND", &[]);
    let e = chip::runtime::preprocess::Preprocess::default().decode(&png).unwrap_err().to_string();
    assert!(e.contains("2147483648 bytes decoded") && e.contains("more than the 1073741824 bytes"), "{e}");
}

#[test]
fn an_oversized_tiff_tag_prints_nothing_but_the_error() {
    require_setup!();
    // A TIFF whose description tag claims 2^31 bytes: the TIFF decoder printed a debug line first.
    let mut t = b"II*\0\x08\0\0\0".to_vec();
    t.extend_from_slice(&1u16.to_le_bytes());
    for v in [270u16, 2] {
        t.extend_from_slice(&v.to_le_bytes());
    }
    t.extend_from_slice(&(1u32 << 31).to_le_bytes());
    t.extend_from_slice(&[0; 8]);
    let dir = tmp("tiff");
    let path = dir.join("big.tif");
    std::fs::write(&path, &t).unwrap();
    let (fit, _) = small();
    fails(&["explain", "--model", s(&model()), "--fit", s(fit), "--out", s(&dir.join("out")), s(&path)], "corrupt TIFF");
}

/// A copy of the small test CNN whose weights live in `w.bin` beside it.
fn external_data_model(dir: &Path) -> PathBuf {
    use protobuf::Message;
    let mut m = chip_testmodels::plain_cnn(3, 7);
    let mut blob = Vec::new();
    for t in m.proto.graph.as_mut().unwrap().initializer.iter_mut() {
        let raw = std::mem::take(&mut t.raw_data);
        let entry = |k: &str, v: String| {
            let mut e = onnx_protobuf::StringStringEntryProto::new();
            e.key = k.into();
            e.value = v;
            e
        };
        t.external_data = vec![entry("location", "w.bin".into()), entry("offset", blob.len().to_string()), entry("length", raw.len().to_string())];
        t.data_location = protobuf::EnumOrUnknown::new(onnx_protobuf::tensor_proto::DataLocation::EXTERNAL);
        blob.extend_from_slice(&raw);
        // Offsets aligned as ONNX's own writer does.
        while blob.len() % 64 != 0 {
            blob.push(0);
        }
    }
    let path = dir.join("m.onnx");
    std::fs::write(&path, m.proto.write_to_bytes().unwrap()).unwrap();
    std::fs::write(dir.join("w.bin"), blob).unwrap();
    path
}

#[test]
fn external_data_is_read_beside_the_model_not_in_the_working_directory() {
    require_setup!();
    let dir = tmp("external");
    let path = external_data_model(&dir);
    // The tests run in the crate root, where no w.bin is: the model's folder is the one that counts.
    let rt = chip::runtime::RuntimeOptions { ort_lib: Some(ort_lib()), ..Default::default() };
    let model = chip::runtime::model::Model::load(&path, &rt).unwrap_or_else(|e| panic!("{e}"));
    let embedded = chip::runtime::model::Model::from_bytes(chip_testmodels::plain_cnn(3, 7).to_bytes().unwrap(), &rt).unwrap();
    let x = vec![0.25f32; 3 * 16 * 16];
    assert_eq!(model.predict(&x, 1).unwrap(), embedded.predict(&x, 1).unwrap());
    // Missing beside the model, present where the user stands: refused, not read from there.
    let other = tmp("external-missing");
    let moved = other.join("m.onnx");
    std::fs::rename(&path, &moved).unwrap();
    let out = chip_in(&dir, &["layers", "--model", s(&moved)]);
    fails_out(out, &["layers"], "w.bin");
}

/// A model the ONNX Runtime binding panics on (a negative dimension, found by fuzzing): the caller gets the
/// error, and the binding's panic message does not reach stderr. Checked in a child process, whose
/// stderr is the one inspected.
#[test]
fn a_panic_of_the_runtime_binding_stays_quiet() {
    require_setup!();
    if std::env::var_os("CHIP_HARDENING_CHILD").is_some() {
        // The fuzz regression input on which the binding panicked while creating the session.
        let bytes = std::fs::read(root().join("tests/data/fuzz/regressions/model-negative-dimension.bin")).unwrap();
        let rt = chip::runtime::RuntimeOptions { ort_lib: Some(ort_lib()), ..Default::default() };
        let e = chip::runtime::Runner::new(bytes, &rt).unwrap_err();
        eprintln!("ERROR: {e}");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_panic_of_the_runtime_binding_stays_quiet", "--nocapture", "--test-threads=1"])
        .env("CHIP_HARDENING_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("ERROR: ONNX Runtime: cannot create a session for the model"), "{stderr}");
    assert!(!stderr.contains("panicked"), "the binding's panic reached stderr: {stderr}");
}
