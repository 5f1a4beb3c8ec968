//! Reading request tensors: batch sizes from shapes, BYTES elements, little-endian numbers.

/// The number of images a tensor holds. With batching the shape is [n, dims...], else [dims...]
/// (n = 1). `dims` are the expected per-image dims.
pub fn batch_size(name: &str, shape: &[i64], batching: bool, dims: &[i64]) -> Result<usize, String> {
    let (n, rest) = if batching {
        match shape.split_first() {
            Some((&n, rest)) if n >= 1 => (n as usize, rest),
            _ => return Err(format!("input {name} has shape {shape:?}: the first dimension must be the batch size (≥ 1), then {dims:?}")),
        }
    } else {
        (1, shape)
    };
    if rest != dims {
        let want = if batching { format!("[n, {}]", join(dims)) } else { format!("[{}]", join(dims)) };
        return Err(format!("input {name} has shape {shape:?}, expected {want}"));
    }
    Ok(n)
}

fn join(dims: &[i64]) -> String {
    dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}

/// Splits a serialized BYTES tensor (each element: u32 little-endian length, then the bytes) into
/// exactly `count` elements.
pub fn bytes_elements<'a>(name: &str, buf: &'a [u8], count: usize) -> Result<Vec<&'a [u8]>, String> {
    let mut out = Vec::with_capacity(count);
    let mut rest = buf;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(format!("input {name}: truncated element length ({} stray bytes)", rest.len()));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        if len > rest.len() {
            return Err(format!("input {name}: element {} claims {len} bytes, only {} remain", out.len(), rest.len()));
        }
        out.push(&rest[..len]);
        rest = &rest[len..];
    }
    if out.len() != count {
        return Err(format!("input {name}: {} elements for a shape of {count}", out.len()));
    }
    Ok(out)
}

pub fn f32s(name: &str, buf: &[u8], count: usize) -> Result<Vec<f32>, String> {
    if buf.len() != count * 4 {
        return Err(format!("input {name} has {} bytes, its shape needs {}", buf.len(), count * 4));
    }
    Ok(buf.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

pub fn i32s(name: &str, buf: &[u8], count: usize) -> Result<Vec<i32>, String> {
    if buf.len() != count * 4 {
        return Err(format!("input {name} has {} bytes, its shape needs {}", buf.len(), count * 4));
    }
    Ok(buf.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialize(elements: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in elements {
            out.extend_from_slice(&(e.len() as u32).to_le_bytes());
            out.extend_from_slice(e);
        }
        out
    }

    #[test]
    fn batch_sizes() {
        assert_eq!(batch_size("IMAGE", &[4, 3, 8, 8], true, &[3, 8, 8]), Ok(4));
        assert_eq!(batch_size("IMAGE", &[3, 8, 8], false, &[3, 8, 8]), Ok(1));
        let e = batch_size("IMAGE", &[3, 8, 8], true, &[3, 8, 8]).unwrap_err();
        assert!(e.contains("expected [n, 3, 8, 8]"), "{e}");
        let e = batch_size("IMAGE", &[0, 3, 8, 8], true, &[3, 8, 8]).unwrap_err();
        assert!(e.contains("batch size"), "{e}");
        let e = batch_size("IMAGE", &[1, 3, 8, 8], false, &[3, 8, 8]).unwrap_err();
        assert!(e.contains("expected [3, 8, 8]"), "{e}");
        assert!(batch_size("CLASS", &[], true, &[1]).is_err());
    }

    #[test]
    fn bytes_round_trip_and_corruption() {
        let a: &[u8] = b"first";
        let b: &[u8] = b"";
        let c: &[u8] = &[0, 1, 2, 255];
        let buf = serialize(&[a, b, c]);
        assert_eq!(bytes_elements("X", &buf, 3).unwrap(), vec![a, b, c]);
        assert!(bytes_elements("X", &buf, 2).unwrap_err().contains("3 elements for a shape of 2"));
        assert!(bytes_elements("X", &buf[..buf.len() - 1], 3).unwrap_err().contains("claims 4 bytes"));
        assert!(bytes_elements("X", &buf[..6], 3).unwrap_err().contains("claims 5 bytes"));
        assert!(bytes_elements("X", &[1, 0], 1).unwrap_err().contains("truncated"));
        assert_eq!(bytes_elements("X", &[], 0).unwrap().len(), 0);
    }

    #[test]
    fn numbers() {
        let v = [1.5f32, -2.0, f32::MAX];
        let buf: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(f32s("X", &buf, 3).unwrap(), v);
        assert!(f32s("X", &buf, 2).is_err());
        let w = [-1i32, 0, 999];
        let buf: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(i32s("C", &buf, 3).unwrap(), w);
    }
}
