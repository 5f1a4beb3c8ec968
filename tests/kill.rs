//! `chip fit` killed with SIGKILL at random moments, some while the fit file is being written: the
//! output folder then holds nothing, or a complete valid fit, and otherwise only the writer's own
//! temporaries of the killed process, which the next write of the same file removes.
//! Needs scripts/setup.sh (ONNX Runtime).
#[macro_use]
mod common;
use chip::engine::fitfile::LayerFit;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OUT: &str = "head.chip";

struct Setup {
    dir: PathBuf,
    model: PathBuf,
    images: PathBuf,
    layer: String,
    classes: usize,
}

fn setup() -> Setup {
    let dir = std::env::temp_dir().join(format!("chip-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // 600 classes × 512 channels: a 1.2 MB fit file, so its write is long enough to be hit.
    let planted = chip_testmodels::planted_cnn(600, 512, 2, false, 9);
    let model = dir.join("model.onnx");
    std::fs::write(&model, planted.model.to_bytes().unwrap()).unwrap();
    // Small real photos in every supported format.
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/seeds");
    for e in std::fs::read_dir(seeds).unwrap().flatten() {
        std::fs::copy(e.path(), images.join(e.file_name())).unwrap();
    }
    Setup { dir, model, images, layer: planted.layer, classes: 600 }
}

fn start(s: &Setup, out_dir: &Path) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chip"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = root.join("third_party/onnxruntime/lib/libonnxruntime.so");
    if lib.exists() && std::env::var_os("CHIP_ORT_LIB").is_none() {
        cmd.env("CHIP_ORT_LIB", lib);
    }
    cmd.args(["fit", "--model"])
        .arg(&s.model)
        .args(["--layer", &s.layer, "--images"])
        .arg(&s.images)
        .arg("--out")
        .arg(out_dir.join(OUT))
        .args(["--gates", "64", "--classes", "0,1,2,3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn().expect("start chip fit")
}

/// `.head.chip.chiptmp-<pid>-<16 hex>`: the atomic writer's temporary of process `pid`.
fn is_temporary_of(name: &str, pid: u32) -> bool {
    let Some(rest) = name.strip_prefix(&format!(".{OUT}{}{pid}-", chip::util::atomic::TMP_MARK)) else { return false };
    rest.len() == 16 && rest.bytes().all(|b| b.is_ascii_hexdigit())
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn check_fit(s: &Setup, path: &Path) {
    let fit = LayerFit::load(path).unwrap_or_else(|e| panic!("{} is not a valid fit: {e}", path.display()));
    assert_eq!((fit.meta.layer.as_str(), fit.meta.classes, fit.meta.channels), (s.layer.as_str(), s.classes, 512));
}

/// Runs `chip fit` to the end; the folder must then hold the fit and nothing else.
fn complete(s: &Setup, out_dir: &Path) -> Duration {
    let t = Instant::now();
    let status = start(s, out_dir).wait().unwrap();
    assert!(status.success(), "an uninterrupted chip fit failed: {status}");
    assert_eq!(names(out_dir), vec![OUT.to_string()], "after a complete write");
    check_fit(s, &out_dir.join(OUT));
    t.elapsed()
}

#[test]
fn fit_killed_at_random_moments_leaves_nothing_or_a_valid_file() {
    require_setup!();
    let s = setup();
    let warm = s.dir.join("warm");
    std::fs::create_dir_all(&warm).unwrap();
    let whole = complete(&s, &warm);
    let mut rng = chip::util::rng::Rng::new(0x6b11);
    let (mut killed_while_writing, mut outcomes) = (0, Vec::new());
    let mut run = 0;
    // Ten runs; the last five aim at the write. A run aimed at the write that misses it (the file
    // was renamed before the signal landed) is tried again, up to 20 times in all.
    while run < 10 || (killed_while_writing == 0 && run < 20) {
        let out_dir = s.dir.join(format!("run{run}"));
        std::fs::create_dir_all(&out_dir).unwrap();
        let mut child = start(&s, &out_dir);
        let pid = child.id();
        if run < 5 {
            // Anywhere from the start to past the usual end.
            let at = whole.mul_f64(1.5 * (rng.next_u64() % 1000) as f64 / 1000.0);
            std::thread::sleep(at);
        } else {
            // As soon as the fit's temporary has bytes in it (the first, empty one only checks that
            // the folder is writable), plus up to a millisecond.
            let deadline = Instant::now() + whole * 4;
            'watch: while Instant::now() < deadline {
                for e in std::fs::read_dir(&out_dir).unwrap().flatten() {
                    if is_temporary_of(&e.file_name().to_string_lossy(), pid) && e.metadata().map(|m| m.len() > 0).unwrap_or(false) {
                        break 'watch;
                    }
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(rng.next_u64() % 1000));
        }
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();

        let found = names(&out_dir);
        let temporaries: Vec<&String> = found.iter().filter(|n| is_temporary_of(n, pid)).collect();
        let others: Vec<&String> = found.iter().filter(|n| n.as_str() != OUT && !is_temporary_of(n, pid)).collect();
        assert!(others.is_empty(), "run {run}: unexpected files {others:?}");
        if found.iter().any(|n| n == OUT) {
            check_fit(&s, &out_dir.join(OUT));
        }
        let midwrite = temporaries.iter().any(|t| std::fs::metadata(out_dir.join(t)).map(|m| m.len() > 0).unwrap_or(false));
        killed_while_writing += midwrite as usize;
        outcomes.push(format!(
            "run {run}: {}{}{}",
            if status.success() { "finished" } else { "killed" },
            if found.iter().any(|n| n == OUT) { ", fit present" } else { ", no fit" },
            if midwrite { ", killed while writing" } else { "" }
        ));
        // The next write removes a dead writer's temporaries: the folder ends with the fit alone.
        if !temporaries.is_empty() {
            complete(&s, &out_dir);
        }
        run += 1;
    }
    eprintln!("{}", outcomes.join("\n"));
    assert!(killed_while_writing > 0, "no run was killed during the write:\n{}", outcomes.join("\n"));
    let _ = std::fs::remove_dir_all(&s.dir);
}
