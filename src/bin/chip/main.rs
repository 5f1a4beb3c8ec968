//! The `chip` command line: list layers, fit a layer, explain photos, evaluate localization,
//! inspect a fit. Errors print as `chip: <message>` and exit with status 1.
use chip::engine::explain::{ClassSelect, ExplainOptions, Explainer, ImageExplanation, Map};
use chip::engine::fit::{FitOptions, Images, Progress};
use chip::engine::fitfile::LayerFit;
use chip::math::localize::{BBox, EvalItem, GtEntry, LocReport};
use chip::runtime::model::Model;
use chip::runtime::{Device, RuntimeOptions};
use chip::{Error, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod eval;
mod explain;
mod export;
mod fit;
mod inspect;

use eval::{eval, eval_loc, mosaic, EvalArgs, EvalLocArgs, MosaicArgs};
use explain::{explain, ExplainArgs};
use fit::{fit, merge, FitArgs, MergeArgs};
use export::{export, ExportArgs};
use inspect::{inspect, layers, InspectArgs};

#[derive(Parser)]
#[command(name = "chip", version, about = "CHIP: channel-wise disentangled interpretation of image classifiers")]
struct Cli {
    #[command(flatten)]
    runtime: RuntimeArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct RuntimeArgs {
    /// Path of libonnxruntime.so (else CHIP_ORT_LIB, then the usual places).
    #[arg(long, global = true, value_name = "PATH")]
    ort_lib: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, global = true, default_value = "cpu", value_parser = parse_device)]
    device: Device,
    /// Intra-op threads per ONNX Runtime session (0: its own choice; at most 1024).
    #[arg(long, global = true, default_value_t = 0)]
    threads: usize,
    /// The model's preprocessing spec (JSON, the keys of the README's table); its keys override
    /// the sidecar <model>.json. Without either, what the graph does not say is assumed, with a warning.
    #[arg(long, global = true, value_name = "FILE.json")]
    preprocess: Option<PathBuf>,
}

/// The `--preprocess` spec of this run, read once before any model loads.
static PREPROCESS: std::sync::OnceLock<Option<chip::runtime::spec::PreprocessSpec>> = std::sync::OnceLock::new();

#[derive(Subcommand)]
enum Command {
    /// List the model's candidate layers with their activation shapes.
    Layers {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Fit a layer's class-by-channel importance and write it to a .chip file.
    Fit(FitArgs),
    /// Merge the statistics of shards (`chip fit --stats-only`) and solve them into a .chip file.
    Merge(MergeArgs),
    /// Explain photos: overlays with boxes, optionally maps as .npy and JSON lines.
    Explain(ExplainArgs),
    /// Evaluate weakly-supervised localization against ground-truth boxes.
    EvalLoc(EvalLocArgs),
    /// Score maps on localization, class discrimination and faithfulness, methods side by side
    /// with 95% bootstrap intervals and paired differences to a reference method.
    Eval(EvalArgs),
    /// Build 2×2 mosaics of photos of different top-1 classes, for the class-discrimination score.
    Mosaic(MosaicArgs),
    /// Show a fit's top channels, sparsity and channel overlap between classes.
    Inspect(InspectArgs),
    /// Write the model with CHIP maps computed inside the ONNX graph (outputs chip_class, chip_maps,
    /// chip_refined), to be served by any ONNX runtime.
    Export(ExportArgs),
}


#[derive(Clone, Debug)]
struct ClassList(Vec<usize>);

fn parse_class_list(s: &str) -> std::result::Result<ClassList, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |t: &str| t.trim().parse::<usize>().map_err(|_| format!("'{t}' is not a class index (a number ≥ 0)"));
        if part.starts_with('-') {
            return Err(format!("'{part}' is not a class index (a number ≥ 0)"));
        }
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("empty class range {a}-{b}"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    if out.is_empty() {
        return Err("no classes given".into());
    }
    out.sort_unstable();
    out.dedup();
    Ok(ClassList(out))
}

fn parse_device(s: &str) -> std::result::Result<Device, String> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => match s.strip_prefix("cuda:").map(str::parse::<i32>) {
            Some(Ok(i)) if i >= 0 => Ok(Device::Cuda(i)),
            _ => Err(format!("'{s}' is not a device (cpu, cuda or cuda:N)")),
        },
    }
}

fn main() -> std::process::ExitCode {
    // A bug must still read as one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("chip: internal error: {msg}{at}");
        std::process::exit(1);
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors exit 1 like every other error; --help and --version exit 0.
            std::process::exit(if e.use_stderr() { 1 } else { 0 });
        }
    };
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Messages may carry text from files (layer names, labels): no raw control characters.
            eprintln!("chip: {}", chip::error::escape_controls(&e.to_string()));
            std::process::ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let rt = RuntimeOptions { ort_lib: cli.runtime.ort_lib, device: cli.runtime.device, threads: cli.runtime.threads, ..Default::default() };
    let spec = cli.runtime.preprocess.as_deref().map(chip::runtime::spec::PreprocessSpec::from_file).transpose()?;
    let _ = PREPROCESS.set(spec);
    match cli.command {
        Command::Layers { model, json } => layers(&model, json, &rt),
        Command::Fit(a) => fit(a, &rt),
        Command::Merge(a) => merge(a, &rt),
        Command::Explain(a) => explain(a, &rt),
        Command::EvalLoc(a) => eval_loc(a, &rt),
        Command::Eval(a) => eval(a, &rt),
        Command::Mosaic(a) => mosaic(a, &rt),
        Command::Inspect(a) => inspect(a, &rt),
        Command::Export(a) => export(a, &rt),
    }
}

/// Prints a line on stdout; a closed pipe (`chip ... | head`) ends the program quietly.
fn emit(line: &str) {
    let mut so = std::io::stdout().lock();
    if writeln!(so, "{line}").and_then(|_| so.flush()).is_err() {
        std::process::exit(0);
    }
}

fn load_model(path: &Path, rt: &RuntimeOptions) -> Result<Arc<Model>> {
    // A folder, FIFO or device says what it is; a missing file says so.
    chip::util::read::open_regular(path, "model")?;
    let model = Model::load_with(path, rt, PREPROCESS.get().and_then(Option::as_ref))?;
    let assumed = model.spec.assumed();
    if !assumed.is_empty() {
        eprintln!(
            "chip: warning: {}: the preprocessing spec does not state {}; assumed {} (state them in --preprocess FILE.json or {})",
            path.display(),
            if assumed.len() == 1 { "this key" } else { "these keys" },
            assumed.join(", "),
            path.with_extension("json").display()
        );
    }
    Ok(Arc::new(model))
}

/// Whether two paths name one file (device and inode, so links and other spellings count);
/// false when either does not exist.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => false,
    }
}

/// Refuses an output path that is one of the inputs (`what` names each): writing it would
/// replace the input.
fn refuse_output_is_input(out: &Path, inputs: &[(&str, &Path)]) -> Result<()> {
    if let Some((what, p)) = inputs.iter().find(|(_, p)| same_file(out, p)) {
        return Err(Error::invalid(format!(
            "--out {} is the {what} {} itself: writing it would replace the input; choose another output path",
            out.display(),
            p.display()
        )));
    }
    Ok(())
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg:>14} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}")
            .expect("valid progress template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

fn load_fits(paths: &[PathBuf]) -> Result<Vec<LayerFit>> {
    paths.iter().map(|p| LayerFit::load(p)).collect()
}

fn label(model: &Model, class: usize) -> String {
    model.label(class).map_or_else(|| format!("class {class}"), str::to_string)
}
