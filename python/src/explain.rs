//! Maps for a set of fits: numpy arrays per batch (maps, boxes with −1 rows for "no box", probabilities).
use chip::engine::explain::{ClassSelect, ExplainOptions, Explainer, ImageExplanation, Map};
use numpy::PyUntypedArrayMethods;
use pyo3::prelude::*;
use std::sync::Arc;

use crate::fit::PyLayerFit;
use crate::{array, invalid, run, slice, ImagesArg, PyModel};

#[pyclass(module = "chip._chip", name = "Explainer", frozen)]
pub struct PyExplainer {
    inner: Arc<Explainer>,
}

/// Corners of a box as int32, all −1 for no box.
fn corners(m: &Map) -> [i32; 4] {
    m.bbox.map(|b| [b.x1 as i32, b.y1 as i32, b.x2 as i32, b.y2 as i32]).unwrap_or([-1; 4])
}

fn int32_array<'py>(py: Python<'py>, data: Vec<i32>, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    let a = numpy::ndarray::ArrayD::from_shape_vec(shape.to_vec(), data).map_err(|e| invalid(py, e.to_string()))?;
    Ok(numpy::IntoPyArray::into_pyarray(a, py).into_any())
}

fn int64_array<'py>(py: Python<'py>, data: Vec<i64>, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    let a = numpy::ndarray::ArrayD::from_shape_vec(shape.to_vec(), data).map_err(|e| invalid(py, e.to_string()))?;
    Ok(numpy::IntoPyArray::into_pyarray(a, py).into_any())
}

#[pymethods]
impl PyExplainer {
    /// Checks every fit against the model (fingerprint, layer, shape); at least one fit.
    #[new]
    fn new(py: Python<'_>, model: &PyModel, fits: Vec<PyRef<'_, PyLayerFit>>) -> PyResult<Self> {
        let fits: Vec<_> = fits.iter().map(|f| f.inner.clone()).collect();
        let m = model.inner.clone();
        Ok(PyExplainer { inner: Arc::new(run(py, move || Explainer::new(m, fits))?) })
    }

    #[getter]
    fn layers(&self) -> Vec<String> { self.inner.layer_names().into_iter().map(str::to_string).collect() }

    /// Returns a dict of arrays (see chip.Explanation). Maps at the original sizes are one array
    /// per image (sizes differ); at the input size one array for the batch.
    #[pyo3(signature = (images, *, sizes=None, classes=None, top_k=1, refined=false, threshold=None, original_size=true))]
    #[allow(clippy::too_many_arguments)]
    fn _explain<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        sizes: Option<Vec<(u32, u32)>>,
        classes: Option<Vec<usize>>,
        top_k: usize,
        refined: bool,
        threshold: Option<f32>,
        original_size: bool,
    ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let options = ExplainOptions {
            classes: match classes {
                Some(c) => ClassSelect::Ids(c),
                None => ClassSelect::TopK(top_k),
            },
            refined,
            threshold: threshold.unwrap_or(chip::math::localize::DEFAULT_THRESHOLD),
            original_size,
        };
        let arg = ImagesArg::from_py(images)?;
        let e = self.inner.clone();
        let (iw, ih) = e.model.input_size().as_usize();
        let out: Vec<ImageExplanation> = match &arg {
            ImagesArg::Tensor(a, given) => {
                let n = a.shape()[0];
                let sizes = match (sizes, given) {
                    (Some(s), _) => s,
                    (None, Some(g)) => g.clone(),
                    (None, None) => vec![(iw as u32, ih as u32); n],
                };
                if sizes.len() != n {
                    return Err(invalid(py, format!("sizes has {} entries for {n} images", sizes.len())));
                }
                let data = slice(a)?;
                let sizes: Vec<chip::Size> = sizes.iter().map(|&(width, height)| chip::Size { width, height }).collect();
                run(py, move || e.explain(data, &sizes, &options))?
            }
            ImagesArg::Dir(p) => {
                let p = p.clone();
                run(py, move || e.explain_files(&chip::engine::fit::list_images(&p)?, &options))?
            }
            ImagesArg::Files(p) => run(py, move || e.explain_files(p, &options))?,
            ImagesArg::Encoded(b) => {
                let bufs: Vec<&[u8]> = b.iter().map(|b| b.as_bytes()).collect();
                run(py, move || e.explain_encoded(&bufs, &options))?
            }
        };
        self.to_dict(py, out, original_size, refined)
    }

    fn __repr__(&self) -> String { format!("chip.Explainer(layers {:?})", self.inner.layer_names()) }
}

impl PyExplainer {
    fn to_dict<'py>(&self, py: Python<'py>, out: Vec<ImageExplanation>, original_size: bool, refined: bool) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let n = out.len();
        let n_classes = self.inner.model.classes;
        let layers = self.inner.fits().len();
        let per = out.first().map(|e| e.classes.len()).unwrap_or(0);
        let (iw, ih) = self.inner.model.input_size().as_usize();
        let mut probs = Vec::with_capacity(n * n_classes);
        let mut class_ids = Vec::with_capacity(n * per);
        let mut scores = Vec::with_capacity(n * per);
        let mut boxes = Vec::with_capacity(n * per * layers * 4);
        let mut refined_boxes = Vec::new();
        let mut maps_batch: Vec<f32> = Vec::new();
        let mut refined_batch: Vec<f32> = Vec::new();
        let maps_list = pyo3::types::PyList::empty(py);
        let refined_list = pyo3::types::PyList::empty(py);
        let mut sizes = Vec::with_capacity(n);
        for img in out {
            probs.extend_from_slice(&img.probabilities);
            sizes.push(crate::make(py, "Size", (img.size.width, img.size.height))?);
            let (mh, mw) = if original_size { (img.size.height as usize, img.size.width as usize) } else { (ih, iw) };
            let mut one: Vec<f32> = Vec::with_capacity(per * layers * mh * mw);
            let mut one_refined: Vec<f32> = Vec::new();
            for c in &img.classes {
                class_ids.push(c.class as i64);
                scores.push(c.probability);
                for m in &c.maps {
                    boxes.extend(corners(m));
                    one.extend_from_slice(&m.data);
                }
                if let Some(r) = &c.refined {
                    refined_boxes.extend(corners(r));
                    one_refined.extend_from_slice(&r.data);
                }
            }
            if original_size {
                maps_list.append(array(py, one, &[per, layers, mh, mw])?)?;
                if refined {
                    refined_list.append(array(py, one_refined, &[per, mh, mw])?)?;
                }
            } else {
                maps_batch.extend(one);
                refined_batch.extend(one_refined);
            }
        }
        let d = pyo3::types::PyDict::new(py);
        d.set_item("probabilities", array(py, probs, &[n, n_classes])?)?;
        d.set_item("classes", int64_array(py, class_ids, &[n, per])?)?;
        d.set_item("scores", array(py, scores, &[n, per])?)?;
        d.set_item("boxes", int32_array(py, boxes, &[n, per, layers, 4])?)?;
        d.set_item("sizes", sizes)?;
        d.set_item("layers", self.layers())?;
        if original_size {
            d.set_item("maps", maps_list)?;
        } else {
            d.set_item("maps", array(py, maps_batch, &[n, per, layers, ih, iw])?)?;
        }
        if refined {
            d.set_item("refined_boxes", int32_array(py, refined_boxes, &[n, per, 4])?)?;
            if original_size {
                d.set_item("refined", refined_list)?;
            } else {
                d.set_item("refined", array(py, refined_batch, &[n, per, ih, iw])?)?;
            }
        }
        Ok(d)
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyExplainer>()
}
