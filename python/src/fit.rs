//! Fits: options from keyword arguments, statistics per shard, merge, solve, and the two file types.
// The crate's fit options type; renamed FitOptions in the vocabulary, so it is named here only.
use chip::engine::fit::FitOptions as CoreFitOptions;
use chip::engine::fit::Progress;
use chip::engine::fitfile::LayerFit;
use chip::math::objective::Target;
use chip::math::stats::Stats;
use numpy::PyArrayMethods;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::sync::Mutex;

use crate::{array, fspath, invalid, run, ImagesArg, PyModel};

const OPTION_NAMES: &str =
    "gates, lambda_rel, sigma2_rel, seed, gate_batch, image_batch, max_iter, rho, classes, target, intercept, nonneg, augment, mosaics";

/// The library's fit options from keyword arguments (field names of chip_fit_options).
fn options(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<CoreFitOptions> {
    let mut p = CoreFitOptions::default();
    let Some(kwargs) = kwargs else { return Ok(p) };
    for (k, v) in kwargs.iter() {
        let key: String = k.extract()?;
        let bad = |e: PyErr| invalid(py, format!("fit option {key}: {}", e.value(py)));
        match key.as_str() {
            "gates" => p.gates = v.extract().map_err(bad)?,
            "lambda_rel" => p.admm.lambda_rel = v.extract().map_err(bad)?,
            "sigma2_rel" => p.sigma2_rel = v.extract().map_err(bad)?,
            "seed" => p.seed = v.extract().map_err(bad)?,
            "gate_batch" => p.gate_batch = v.extract().map_err(bad)?,
            "image_batch" => p.image_batch = v.extract().map_err(bad)?,
            "max_iter" => p.admm.max_iter = v.extract().map_err(bad)?,
            "rho" => {
                // None or 0 picks ρ from the problem's scale, as in the C API.
                let r: Option<f64> = v.extract().map_err(bad)?;
                p.admm.rho = r.filter(|&r| r != 0.0);
            }
            "classes" => p.classes = v.extract().map_err(bad)?,
            "target" => {
                let t: String = v.extract().map_err(bad)?;
                p.objective.target = Target::parse(&t).map_err(|e| crate::to_py(py, e))?;
            }
            "intercept" => p.objective.intercept = v.extract().map_err(bad)?,
            "nonneg" => p.objective.nonneg = v.extract().map_err(bad)?,
            "augment" => p.augment = v.extract().map_err(bad)?,
            "mosaics" => p.mosaics = v.extract().map_err(bad)?,
            _ => return Err(invalid(py, format!("unknown fit option '{key}' (known: {OPTION_NAMES})"))),
        }
    }
    Ok(p)
}

/// The library's default fit options as a dict (the Python signatures are checked against it).
#[pyfunction]
fn fit_options_default(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let p = CoreFitOptions::default();
    let d = PyDict::new(py);
    d.set_item("gates", p.gates)?;
    d.set_item("lambda_rel", p.admm.lambda_rel)?;
    d.set_item("sigma2_rel", p.sigma2_rel)?;
    d.set_item("seed", p.seed)?;
    d.set_item("gate_batch", p.gate_batch)?;
    d.set_item("image_batch", p.image_batch)?;
    d.set_item("max_iter", p.admm.max_iter)?;
    d.set_item("rho", p.admm.rho)?;
    d.set_item("classes", p.classes)?;
    d.set_item("target", p.objective.target.name())?;
    d.set_item("intercept", p.objective.intercept)?;
    d.set_item("nonneg", p.objective.nonneg)?;
    d.set_item("augment", p.augment)?;
    d.set_item("mosaics", p.mosaics)?;
    Ok(d)
}

/// Calls `callback(kind, done, total)` with the GIL; False or an exception cancels, and an
/// exception (KeyboardInterrupt included) is kept to be raised instead of chip.CancelledError.
struct Callback {
    callback: Option<Py<PyAny>>,
    error: Mutex<Option<PyErr>>,
}

impl Callback {
    fn new(callback: Option<Py<PyAny>>) -> Self { Callback { callback, error: Mutex::new(None) } }

    fn call(&self, p: Progress) -> bool {
        let (kind, done, total) = match p {
            Progress::Images { done, total } => ("images", done, total),
            Progress::SuffixRuns { done, total } => ("suffix_runs", done, total),
            Progress::Classes { done, total } => ("classes", done, total),
        };
        Python::attach(|py| {
            let result = py.check_signals().and_then(|_| match &self.callback {
                Some(cb) => cb.call1(py, (kind, done, total)).map(|r| {
                    let r = r.bind(py);
                    !(r.is_instance_of::<pyo3::types::PyBool>() && !r.is_truthy().unwrap_or(true))
                }),
                None => Ok(true),
            });
            match result {
                Ok(go_on) => go_on,
                Err(e) => {
                    self.error.lock().unwrap().get_or_insert(e);
                    false
                }
            }
        })
    }

    /// The callback's exception in place of the library's Cancelled.
    fn finish<T>(&self, r: PyResult<T>) -> PyResult<T> {
        match (r, self.error.lock().unwrap().take()) {
            (Err(_), Some(e)) => Err(e),
            (r, _) => r,
        }
    }
}

/// Statistics of one layer over images (a shard); merge shards, then solve.
#[pyfunction]
#[pyo3(signature = (model, layer, images, options=None, progress=None))]
fn collect_stats(
    py: Python<'_>,
    model: &PyModel,
    layer: &str,
    images: &Bound<'_, PyAny>,
    options: Option<&Bound<'_, PyDict>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<PyStats> {
    let params = self::options(py, options)?;
    let arg = ImagesArg::from_py(images)?;
    let imgs = arg.images()?;
    let m = model.inner.clone();
    let cb = Callback::new(progress);
    let r = run(py, || chip::engine::fit::collect_stats(&m, layer, &imgs, &params, &|p| cb.call(p)));
    Ok(PyStats { inner: cb.finish(r)? })
}

/// Solves statistics into a fitted layer (at the layer the statistics were collected at).
#[pyfunction]
#[pyo3(signature = (model, stats, options=None, progress=None))]
fn solve(py: Python<'_>, model: &PyModel, stats: &PyStats, options: Option<&Bound<'_, PyDict>>, progress: Option<Py<PyAny>>) -> PyResult<PyLayerFit> {
    let params = self::options(py, options)?;
    let m = model.inner.clone();
    let s = &stats.inner;
    let cb = Callback::new(progress);
    let r = run(py, || chip::engine::fit::solve(&m, &s.layer, s, &params, &|p| cb.call(p)));
    Ok(PyLayerFit { inner: cb.finish(r)? })
}

/// collect_stats then solve.
#[pyfunction]
#[pyo3(signature = (model, layer, images, options=None, progress=None))]
fn fit_layer(
    py: Python<'_>,
    model: &PyModel,
    layer: &str,
    images: &Bound<'_, PyAny>,
    options: Option<&Bound<'_, PyDict>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<PyLayerFit> {
    let params = self::options(py, options)?;
    let arg = ImagesArg::from_py(images)?;
    let imgs = arg.images()?;
    let m = model.inner.clone();
    let cb = Callback::new(progress);
    let r = run(py, || chip::engine::fit::fit_layer(&m, layer, &imgs, &params, &|p| cb.call(p)));
    Ok(PyLayerFit { inner: cb.finish(r)? })
}

/// Sufficient statistics of a shard of images (the `.stats` file).
#[pyclass(module = "chip._chip", name = "Stats")]
#[derive(Clone)]
pub struct PyStats {
    pub(crate) inner: Stats,
}

#[pymethods]
impl PyStats {
    #[staticmethod]
    fn load(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<Self> {
        let p = fspath(path, "path")?;
        Ok(PyStats { inner: run(py, move || Stats::load(&p))? })
    }

    /// Written through a temporary file and a rename: never a partial file.
    fn save(&self, py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<()> {
        let p = fspath(path, "path")?;
        let s = &self.inner;
        run(py, move || s.save(&p))
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let s = &self.inner;
        let b = run(py, move || Ok(s.to_bytes()))?;
        Ok(PyBytes::new(py, &b))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        Ok(PyStats { inner: run(py, move || Stats::from_bytes(data, "<bytes>".as_ref()))? })
    }

    /// Adds another shard's statistics in place (same model, layer, gates, target, views, mosaics).
    fn merge(&mut self, py: Python<'_>, other: &PyStats) -> PyResult<()> {
        let (a, b) = (&mut self.inner, &other.inner);
        run(py, move || a.merge(b))
    }

    fn copy(&self) -> Self { self.clone() }

    #[getter]
    fn images(&self) -> usize { self.inner.images }
    #[getter]
    fn layer(&self) -> &str { &self.inner.layer }
    #[getter]
    fn channels(&self) -> usize { self.inner.channels }
    #[getter]
    fn classes(&self) -> usize { self.inner.classes }
    #[getter]
    fn gates(&self) -> usize { self.inner.gate_count }
    #[getter]
    fn seed(&self) -> u64 { self.inner.gate_seed }
    #[getter]
    fn sigma2_rel(&self) -> f64 { self.inner.sigma2_rel }
    #[getter]
    fn target(&self) -> &'static str { self.inner.target.name() }
    #[getter]
    fn augment(&self) -> usize { self.inner.augment }
    #[getter]
    fn mosaics(&self) -> usize { self.inner.mosaics }
    #[getter]
    fn model_fingerprint(&self) -> &str { &self.inner.model_fingerprint }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<PyStats>().map(|o| o.borrow().inner == self.inner).unwrap_or(false)
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let py = slf.py();
        let ctor = py.get_type::<PyStats>().getattr("from_bytes")?;
        Ok((ctor, (slf.borrow().to_bytes(py)?,)))
    }

    fn __repr__(&self) -> String {
        let s = &self.inner;
        format!("chip.Stats(layer '{}', {} images, {} gates, {} channels, {} classes)", s.layer, s.images, s.gate_count, s.channels, s.classes)
    }
}

/// Merges statistics in the order given (the order fixes the floating-point sums).
#[pyfunction]
fn merge(py: Python<'_>, stats: Vec<PyRef<'_, PyStats>>) -> PyResult<PyStats> {
    let Some((first, rest)) = stats.split_first() else {
        return Err(invalid(py, "merge needs at least one Stats"));
    };
    let mut out = first.inner.clone();
    let rest: Vec<&Stats> = rest.iter().map(|s| &s.inner).collect();
    run(py, || rest.iter().try_for_each(|s| out.merge(s)))?;
    Ok(PyStats { inner: out })
}

/// The fitted W of one layer (the `.chip` file).
#[pyclass(module = "chip._chip", name = "LayerFit", frozen)]
#[derive(Clone)]
pub struct PyLayerFit {
    pub(crate) inner: LayerFit,
}

#[pymethods]
impl PyLayerFit {
    #[staticmethod]
    fn load(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<Self> {
        let p = fspath(path, "path")?;
        Ok(PyLayerFit { inner: run(py, move || LayerFit::load(&p))? })
    }

    /// Written through a temporary file and a rename: never a partial file.
    fn save(&self, py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<()> {
        let p = fspath(path, "path")?;
        let f = &self.inner;
        run(py, move || f.save(&p))
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let f = &self.inner;
        let b = run(py, move || f.to_bytes())?;
        Ok(PyBytes::new(py, &b))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        Ok(PyLayerFit { inner: run(py, move || LayerFit::from_bytes(data, "<bytes>".as_ref()))? })
    }

    /// W as a classes×channels float32 array (a copy; the fit itself stays immutable).
    #[getter]
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let m = &self.inner.meta;
        let a = array(py, self.inner.weights.clone(), &[m.classes, m.channels])?;
        a.cast::<numpy::PyArray2<f32>>()?.readwrite().make_nonwriteable();
        Ok(a)
    }

    #[getter]
    fn layer(&self) -> &str { &self.inner.meta.layer }
    #[getter]
    fn channels(&self) -> usize { self.inner.meta.channels }
    #[getter]
    fn height(&self) -> usize { self.inner.meta.height }
    #[getter]
    fn width(&self) -> usize { self.inner.meta.width }
    #[getter]
    fn classes(&self) -> usize { self.inner.meta.classes }
    #[getter]
    fn gates(&self) -> usize { self.inner.meta.gates }
    #[getter]
    fn seed(&self) -> u64 { self.inner.meta.seed }
    #[getter]
    fn sigma2_rel(&self) -> f64 { self.inner.meta.sigma2_rel }
    #[getter]
    fn lambda_rel(&self) -> f64 { self.inner.meta.admm.lambda_rel }
    #[getter]
    fn images(&self) -> usize { self.inner.meta.images }
    #[getter]
    fn target(&self) -> &'static str { self.inner.meta.objective.target.name() }
    #[getter]
    fn intercept(&self) -> bool { self.inner.meta.objective.intercept }
    #[getter]
    fn nonneg(&self) -> bool { self.inner.meta.objective.nonneg }
    #[getter]
    fn augment(&self) -> usize { self.inner.meta.augment }
    #[getter]
    fn mosaics(&self) -> usize { self.inner.meta.mosaics }
    #[getter]
    fn solved_classes(&self) -> Vec<usize> { self.inner.meta.solved_classes.clone() }
    #[getter]
    fn model_fingerprint(&self) -> &str { &self.inner.meta.model_fingerprint }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<PyLayerFit>().map(|o| o.get().inner == self.inner).unwrap_or(false)
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let py = slf.py();
        let ctor = py.get_type::<PyLayerFit>().getattr("from_bytes")?;
        Ok((ctor, (slf.get().to_bytes(py)?,)))
    }

    fn __repr__(&self) -> String {
        let m = &self.inner.meta;
        format!(
            "chip.LayerFit(layer '{}', {} classes × {} channels, {} images, {} solved classes)",
            m.layer, m.classes, m.channels, m.images, m.solved_classes.len()
        )
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyStats>()?;
    m.add_class::<PyLayerFit>()?;
    m.add_function(wrap_pyfunction!(fit_options_default, m)?)?;
    m.add_function(wrap_pyfunction!(collect_stats, m)?)?;
    m.add_function(wrap_pyfunction!(solve, m)?)?;
    m.add_function(wrap_pyfunction!(fit_layer, m)?)?;
    m.add_function(wrap_pyfunction!(merge, m)?)?;
    Ok(())
}
