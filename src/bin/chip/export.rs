//! `chip export`: the CHIP maps inside the ONNX graph.
use super::*;

#[derive(Args)]
pub(crate) struct ExportArgs {
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// A fit of this model (repeat for several layers; maps come in this order).
    #[arg(long = "fit", required = true)]
    pub(crate) fits: Vec<PathBuf>,
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Add an int64 input chip_target_class [N]: a value >= 0 explains that class instead of the top-1.
    #[arg(long)]
    pub(crate) class_input: bool,
}

pub(crate) fn export(a: ExportArgs, rt: &RuntimeOptions) -> Result<()> {
    let mut inputs: Vec<(&str, &Path)> = a.fits.iter().map(|p| ("fit file", p.as_path())).collect();
    inputs.push(("model", &a.model));
    refuse_output_is_input(&a.out, &inputs)?;
    chip::util::atomic::check_writable(&a.out)?;
    let fits: Vec<LayerFit> = a.fits.iter().map(|p| LayerFit::load(p)).collect::<Result<_>>()?;
    let model = load_model(&a.model, rt)?;
    let options = chip::engine::export::ExportOptions { class_input: a.class_input };
    chip::engine::export::export_to_file(&model, &fits, &options, &a.out)?;
    let layers: Vec<&str> = fits.iter().map(|f| f.meta.layer.as_str()).collect();
    emit(&format!("wrote {} (maps of {})", a.out.display(), layers.join(", ")));
    Ok(())
}
