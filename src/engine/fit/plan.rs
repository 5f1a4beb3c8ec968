//! One statistics pass: the layer, split, ports and gates resolved once into a plan, then image
//! batches streamed through it.
use super::*;
use crate::math::gates::GateSet;
use crate::math::objective::Target;
use crate::math::stats::gated::{self, first_non_finite};
use crate::onnx::head::LinearHead;
use crate::runtime::model::OutputKind;

pub(super) enum Source<'a> {
    Files(Vec<PathBuf>),
    Tensor(&'a [f32]),
    Encoded(&'a [&'a [u8]]),
}

impl Source<'_> {
    /// Preprocessed images `range` of the source, appended to `out`.
    pub(super) fn load(&self, model: &Model, range: std::ops::Range<usize>, image_len: usize, out: &mut Vec<f32>) -> Result<()> {
        let push = |out: &mut Vec<f32>, data: Vec<f32>, what: &dyn Fn() -> String| {
            if data.len() != image_len {
                return Err(Error::Image {
                    what: what(),
                    msg: format!("preprocessed to {} floats, the model takes {}", data.len(), image_len),
                });
            }
            out.extend_from_slice(&data);
            Ok(())
        };
        match self {
            Source::Tensor(d) => out.extend_from_slice(&d[range.start * image_len..range.end * image_len]),
            Source::Files(files) => {
                for p in &files[range] {
                    push(out, model.preprocess.load(p)?.data, &|| p.display().to_string())?;
                }
            }
            Source::Encoded(bufs) => {
                for (i, b) in bufs[range.clone()].iter().enumerate() {
                    push(out, model.preprocess.decode(b)?.data, &|| format!("image {}", range.start + i))?;
                }
            }
        }
        Ok(())
    }
}

/// A statistics pass resolved once: the layer, the split and its ports, the gates, the target.
pub(super) struct Plan<'m> {
    pub(super) model: &'m Model,
    pub(super) layer: String,
    /// Layer channels, height, width.
    pub(super) k: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) split: std::sync::Arc<crate::runtime::model::SplitRunner>,
    pub(super) gates: GateSet,
    pub(super) gate_batch: usize,
    pub(super) suffix_inputs: Vec<String>,
    /// For each suffix input, its index among the prefix outputs.
    pub(super) crossing_pos: Vec<usize>,
    /// The layer's index among the suffix inputs.
    pub(super) layer_input: usize,
    pub(super) out_index: usize,
    pub(super) target: Target,
    pub(super) is_logits: bool,
    /// The layer's GAP→linear head, when the gated outputs come in closed form.
    pub(super) head: Option<LinearHead>,
    pub(super) activation: crate::math::objective::Activation,
}

/// Buffers reused across batches, the statistics and the running totals of a pass.
pub(super) struct Pass {
    pub(super) tiled: Vec<Vec<f32>>,
    pub(super) shapes: Vec<Vec<usize>>,
    pub(super) g: Vec<f32>,
    pub(super) z: Vec<f32>,
    pub(super) stats: Stats,
    pub(super) t: FitTimings,
    pub(super) runs_done: usize,
    pub(super) total_runs: usize,
    pub(super) rows_done: usize,
    pub(super) total_rows: usize,
}

impl<'m> Plan<'m> {
    pub(super) fn new(model: &'m Model, layer: &str, params: &FitOptions) -> Result<Self> {
        let info = model.layer(layer)?;
        let (k, h, w) = (info.channels, info.height, info.width);
        crate::math::gates::check_sigma2(params.sigma2_rel, layer, k)?;
        crate::math::gates::check_count(params.gates, k)?;
        let gates = GateSet::generate(k, params.gates, params.sigma2_rel, params.seed);
        let split = model.split(layer)?;
        let prefix_outputs = split.prefix.output_names().to_vec();
        let suffix_inputs = split.suffix.input_names().to_vec();
        let suffix_outputs = split.suffix.output_names().to_vec();
        // Every suffix input must come out of the prefix; the layer is crossing[0].
        let crossing_pos: Vec<usize> = suffix_inputs
            .iter()
            .map(|name| {
                prefix_outputs.iter().position(|p| p == name).ok_or_else(|| {
                    Error::Model(format!("split at '{layer}': suffix input '{name}' is not an output of the prefix"))
                })
            })
            .collect::<Result<_>>()?;
        let layer_input = suffix_inputs
            .iter()
            .position(|n| n == &split.crossing[0])
            .ok_or_else(|| Error::Model(format!("split at '{layer}': the layer is not an input of the suffix")))?;
        let out_index = suffix_outputs.iter().position(|n| n == &model.output).ok_or_else(|| {
            Error::Model(format!("split at '{layer}': the suffix does not produce the output '{}'", model.output))
        })?;
        let head = match params.pass {
            StatsPass::Suffix => None,
            pass => {
                let found = model.onnx.linear_head(layer, &model.output).and_then(|h| {
                    if h.channels == k && h.classes == model.classes {
                        Ok(h)
                    } else {
                        Err(Error::Model(format!(
                            "the linear head on '{layer}' is {}×{}, the layer has {k} channels and the model {} classes",
                            h.classes, h.channels, model.classes
                        )))
                    }
                });
                match (pass, found) {
                    (_, Ok(h)) => Some(h),
                    (StatsPass::ClosedForm, Err(e)) => return Err(e),
                    _ => None,
                }
            }
        };
        Ok(Plan {
            model,
            layer: layer.to_string(),
            k,
            h,
            w,
            gate_batch: params.gate_batch.min(gates.count),
            gates,
            split,
            suffix_inputs,
            crossing_pos,
            layer_input,
            out_index,
            target: params.objective.target,
            is_logits: model.output_kind == OutputKind::Logits,
            head,
            activation: model.activation,
        })
    }

    pub(super) fn pass(&self, total_rows: usize) -> Pass {
        let n_in = self.suffix_inputs.len();
        Pass {
            tiled: vec![Vec::new(); n_in],
            shapes: vec![Vec::new(); n_in],
            g: vec![0f32; self.gates.count * self.model.classes],
            z: vec![0f32; self.k],
            stats: Stats::new(&self.gates, self.model.classes, self.target),
            t: FitTimings::default(),
            runs_done: 0,
            total_runs: total_rows * self.gates.count.div_ceil(self.gate_batch),
            rows_done: 0,
            total_rows,
        }
    }

    /// Adds `b` preprocessed images (b×C×H×W) to the pass: the prefix once, the ungated suffix for
    /// f, the gated suffix per gate batch for g. `name(i)` names image i of the batch in errors.
    pub(super) fn run_batch(&self, pass: &mut Pass, data: &[f32], b: usize, name: &dyn Fn(usize) -> String, progress: ProgressFn) -> Result<()> {
        let (model, layer, k, h, w) = (self.model, self.layer.as_str(), self.k, self.h, self.w);
        let hw = h * w;
        let (iw, ih) = model.input_size().as_usize();
        let ic = model.input.channels;
        let t = &mut pass.t;

        let t0 = Instant::now();
        let prefix_out = self.split.prefix.run(&[(model.input.name.as_str(), &[b, ic, ih, iw], data)])?;
        t.prefix += t0.elapsed();

        // Each crossing tensor as produced, batch first.
        let crossing: Vec<&(Vec<usize>, Vec<f32>)> = self.crossing_pos.iter().map(|&i| &prefix_out[i]).collect();
        for (i, (shape, values)) in crossing.iter().enumerate() {
            if shape.first() != Some(&b) || values.len() % b != 0 {
                return Err(Error::Model(format!(
                    "split at '{layer}': crossing tensor '{}' has shape {:?}, expected batch {b} first",
                    self.suffix_inputs[i], shape
                )));
            }
        }
        let (lshape, lact) = crossing[self.layer_input];
        if lshape.len() != 4 || lshape[1] != k || lshape[2] != h || lshape[3] != w {
            return Err(Error::Model(format!("layer '{layer}' has shape {:?} in the fit, expected [{b}, {k}, {h}, {w}]", lshape)));
        }
        if let Some(i) = first_non_finite(lact) {
            return Err(Error::NonFinite(format!("activations of layer '{layer}' ({})", name(i / (k * hw)))));
        }

        if let Some(head) = &self.head {
            return self.closed_form(pass, head, lact, b, name, progress);
        }
        self.suffix_pass(pass, &crossing, lact, b, name, progress)
    }

    /// The gated outputs of a GAP→linear head in closed form ([`gated::Head`]): for the batch, the
    /// pooled layer, the original outputs and every gate's outputs as two products, then the
    /// statistics.
    fn closed_form(&self, pass: &mut Pass, head: &LinearHead, lact: &[f32], b: usize, name: &dyn Fn(usize) -> String, progress: ProgressFn) -> Result<()> {
        let (k, hw, classes, n_gates) = (self.k, self.h * self.w, self.model.classes, self.gates.count);
        let form = gated::Head { weight: &head.weight, bias: &head.bias, softmax: head.softmax };
        let par = faer::Par::rayon(0);
        let t = &mut pass.t;
        t.closed_form = true;
        let t0 = Instant::now();
        let mut z = vec![0f32; b * k];
        for (zs, act) in z.chunks_exact_mut(k).zip(lact.chunks_exact(k * hw)) {
            gated::pool(act, hw, zs);
        }
        // One image at a time, so that an image's numbers do not depend on the batch it came in
        // (shards and batch sizes give the same statistics, bit for bit).
        let mut orig = vec![0f32; b * classes];
        for (zs, o) in z.chunks_exact(k).zip(orig.chunks_exact_mut(classes)) {
            form.outputs(zs, 1, o, par);
        }
        self.model.to_probabilities(&mut orig);
        t.original += t0.elapsed();
        if let Some(i) = first_non_finite(&orig) {
            return Err(Error::NonFinite(format!("model output ({})", name(i / classes))));
        }

        let t0 = Instant::now();
        let mut g = vec![0f32; b * n_gates * classes];
        for (zs, gi) in z.chunks_exact(k).zip(g.chunks_exact_mut(n_gates * classes)) {
            form.gated_outputs(&self.gates, zs, 1, gi, par);
        }
        gated::apply_target(self.target, &mut g, classes, self.is_logits, self.activation);
        t.suffix += t0.elapsed();
        t.gate_rows += b * n_gates;
        if let Some(idx) = first_non_finite(&g) {
            let (i, gate) = (idx / (n_gates * classes), idx % (n_gates * classes) / classes);
            return Err(Error::NonFinite(format!("gated model output ({}, gate {gate})", name(i))));
        }

        // Progress as the suffix would report it (gate batches per image), then the statistics.
        let runs_per_image = n_gates.div_ceil(self.gate_batch);
        for i in 0..b {
            for _ in 0..runs_per_image {
                pass.runs_done += 1;
                if !progress(Progress::SuffixRuns { done: pass.runs_done, total: pass.total_runs }) {
                    return Err(Error::Cancelled);
                }
            }
            let t0 = Instant::now();
            let (zi, fi, gi) = (&z[i * k..(i + 1) * k], &orig[i * classes..(i + 1) * classes], &g[i * n_gates * classes..(i + 1) * n_gates * classes]);
            pass.stats.add_images(&self.gates, zi, fi, gi)?;
            pass.t.stats += t0.elapsed();
            pass.rows_done += 1;
            pass.t.images = pass.rows_done;
            if !progress(Progress::Images { done: pass.rows_done, total: pass.total_rows }) {
                return Err(Error::Cancelled);
            }
        }
        Ok(())
    }

    /// The gated outputs from suffix runs, one per gate batch of each image.
    fn suffix_pass(
        &self,
        pass: &mut Pass,
        crossing: &[&(Vec<usize>, Vec<f32>)],
        lact: &[f32],
        b: usize,
        name: &dyn Fn(usize) -> String,
        progress: ProgressFn,
    ) -> Result<()> {
        let (model, k, h, w) = (self.model, self.k, self.h, self.w);
        let hw = h * w;
        let classes = model.classes;
        let n_gates = self.gates.count;
        let gate_batch = self.gate_batch;
        let t = &mut pass.t;
        // Original probabilities from the ungated suffix: the same graph as the gated runs, so an
        // all-open gate reproduces f exactly.
        let t0 = Instant::now();
        let orig_inputs: Vec<(&str, &[usize], &[f32])> = self
            .suffix_inputs
            .iter()
            .zip(crossing)
            .map(|(name, (s, v))| (name.as_str(), s.as_slice(), v.as_slice()))
            .collect();
        let mut orig = self.split.suffix.run(&orig_inputs)?.swap_remove(self.out_index).1;
        if orig.len() != b * classes {
            return Err(Error::Model(format!("model output has {} values for {b} images, expected {}", orig.len(), b * classes)));
        }
        model.to_probabilities(&mut orig);
        t.original += t0.elapsed();
        if let Some(i) = first_non_finite(&orig) {
            return Err(Error::NonFinite(format!("model output ({})", name(i / classes))));
        }

        for i in 0..b {
            let act = &lact[i * k * hw..(i + 1) * k * hw];
            gated::pool(act, hw, &mut pass.z);
            let f_s = &orig[i * classes..(i + 1) * classes];

            // Tile the other crossing tensors once per image; every gate batch reuses them.
            let t0 = Instant::now();
            for (j, (shape, values)) in crossing.iter().enumerate() {
                let per = values.len() / b;
                let buf = &mut pass.tiled[j];
                buf.resize(gate_batch * per, 0.0);
                let mut s = shape.clone();
                s[0] = gate_batch;
                pass.shapes[j] = s;
                if j != self.layer_input {
                    gated::tile(&values[i * per..(i + 1) * per], buf);
                }
            }
            t.build += t0.elapsed();

            for n0 in (0..n_gates).step_by(gate_batch) {
                let rows = gate_batch.min(n_gates - n0);
                let t0 = Instant::now();
                gated::mask(&self.gates, n0, rows, act, hw, &mut pass.tiled[self.layer_input]);
                t.build += t0.elapsed();

                let t0 = Instant::now();
                let run_shapes: Vec<Vec<usize>> = pass
                    .shapes
                    .iter()
                    .map(|s| {
                        let mut s = s.clone();
                        s[0] = rows;
                        s
                    })
                    .collect();
                let inputs: Vec<(&str, &[usize], &[f32])> = self
                    .suffix_inputs
                    .iter()
                    .zip(&run_shapes)
                    .zip(&pass.tiled)
                    .map(|((name, s), buf)| {
                        let per = buf.len() / gate_batch;
                        (name.as_str(), s.as_slice(), &buf[..rows * per])
                    })
                    .collect();
                let out = self.split.suffix.run(&inputs)?;
                let raw = &out[self.out_index].1;
                if raw.len() != rows * classes {
                    return Err(Error::Model(format!(
                        "suffix output has {} values for {rows} gates, expected {}",
                        raw.len(),
                        rows * classes
                    )));
                }
                let dst = &mut pass.g[n0 * classes..(n0 + rows) * classes];
                dst.copy_from_slice(raw);
                for row in dst.chunks_exact_mut(classes) {
                    self.target.apply_with(row, self.is_logits, self.activation);
                }
                t.suffix += t0.elapsed();
                t.suffix_runs += 1;
                t.gate_rows += rows;
                pass.runs_done += 1;
                if !progress(Progress::SuffixRuns { done: pass.runs_done, total: pass.total_runs }) {
                    return Err(Error::Cancelled);
                }
            }
            if let Some(idx) = first_non_finite(&pass.g) {
                return Err(Error::NonFinite(format!("gated model output ({}, gate {})", name(i), idx / classes)));
            }

            let t0 = Instant::now();
            pass.stats.add_image(&self.gates, &pass.z, f_s, &pass.g)?;
            t.stats += t0.elapsed();
            pass.rows_done += 1;
            t.images = pass.rows_done;
            if !progress(Progress::Images { done: pass.rows_done, total: pass.total_rows }) {
                return Err(Error::Cancelled);
            }
        }
        Ok(())
    }
}
