//! One error type for the whole library; the C ABI maps each variant to a status code.
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("ONNX Runtime library not found; tried: {tried}. Run scripts/setup.sh, or set CHIP_ORT_LIB to the path of libonnxruntime.so")]
    OrtNotFound { tried: String },
    #[error("ONNX Runtime: {0}")]
    Ort(String),
    #[error("invalid model: {0}")]
    Model(String),
    #[error("unknown layer '{name}' (candidate layers: {candidates})")]
    UnknownLayer { name: String, candidates: String },
    #[error("image {what}: {msg}")]
    Image { what: String, msg: String },
    /// Truncated, altered or unparsable fit or statistics file.
    #[error("{path}: {msg}")]
    FitFile { path: PathBuf, msg: String },
    /// A fit file written by a newer format version.
    #[error("{path}: format version {found} is newer than the supported version {supported}")]
    FitVersion { path: PathBuf, found: u32, supported: u32 },
    /// A fit file (or statistics) that belongs to another model, layer or gate set.
    #[error("fit mismatch: {0}")]
    FitMismatch(String),
    #[error("non-finite value (NaN or infinity) in {0}")]
    NonFinite(String),
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
}

impl From<ort::Error> for Error {
    fn from(e: ort::Error) -> Self {
        Error::Ort(e.to_string())
    }
}

/// `s` with control characters (ANSI escapes, newlines, NUL) and bidirectional overrides written
/// as `\u{..}` escapes: for messages that carry text from files (layer names, labels, paths), so
/// that such text cannot restyle, reorder or forge what a terminal shows.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}');
    if !s.chars().any(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn controls_and_bidi_overrides_are_escaped() {
        assert_eq!(super::escape_controls("layer '/a/b'"), "layer '/a/b'");
        assert_eq!(super::escape_controls("a\x1b[31mb\u{202E}c\nd"), "a\\u{1b}[31mb\\u{202e}c\\u{a}d");
    }
}
