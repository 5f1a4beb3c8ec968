//! The fits an explainer or an export uses, checked once against the model.
use crate::engine::fitfile::LayerFit;
use crate::error::{Error, Result};
use crate::runtime::model::Model;

/// One or more fits of distinct layers of one model, each checked against it (fingerprint, layer,
/// shape, preprocessing), with the pair of layers Refined CHIP multiplies.
#[derive(Clone, Debug)]
pub struct FitSet {
    fits: Vec<LayerFit>,
    refine: Option<(usize, usize)>,
}

impl FitSet {
    /// Refuses no fits, a fit of another model or preprocessing, and two fits of one layer.
    pub fn new(model: &Model, fits: Vec<LayerFit>) -> Result<FitSet> {
        if fits.is_empty() {
            return Err(Error::invalid("at least one fitted layer is needed"));
        }
        for (i, f) in fits.iter().enumerate() {
            f.check_against(model)?;
            if fits[..i].iter().any(|g| g.meta.layer == f.meta.layer) {
                return Err(Error::invalid(format!("two fits of layer '{}'; give one per layer", f.meta.layer)));
            }
        }
        let refine = refine_pair(model, &fits)?;
        Ok(FitSet { fits, refine })
    }

    /// The fits, in the order given.
    pub fn fits(&self) -> &[LayerFit] { &self.fits }

    /// The fitted layers' names, in the order given.
    pub fn layer_names(&self) -> Vec<&str> { self.fits.iter().map(|f| f.meta.layer.as_str()).collect() }

    /// Indices into [`FitSet::fits`] of the layers Refined CHIP multiplies: the first and the last
    /// fitted layer of the network, whatever order the fits were given in. None with one layer.
    pub fn refine_pair(&self) -> Option<(usize, usize)> { self.refine }
}

fn refine_pair(model: &Model, fits: &[LayerFit]) -> Result<Option<(usize, usize)>> {
    if fits.len() < 2 {
        return Ok(None);
    }
    let order: Vec<String> = model.layers()?.into_iter().map(|l| l.name).collect();
    let pos = |f: &LayerFit| order.iter().position(|n| *n == f.meta.layer).unwrap_or(usize::MAX);
    let first = (0..fits.len()).min_by_key(|&i| (pos(&fits[i]), i)).unwrap_or(0);
    let last = (0..fits.len()).max_by_key(|&i| (pos(&fits[i]), usize::MAX - i)).unwrap_or(0);
    Ok(if first == last { None } else { Some((first, last)) })
}
