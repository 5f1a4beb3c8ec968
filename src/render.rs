//! Pictures of explanations: a perceptual colour map, a map blended over its photo, box outlines,
//! and float maps as NumPy `.npy` files.
use crate::error::{Error, Result};
use crate::math::localize::BBox;
use image::{Rgb, RgbImage};
use std::path::Path;

/// Viridis (perceptually uniform, readable in grey and by colour-blind viewers) as a degree-6
/// polynomial per channel; within about 1/100 of the tabulated colours over 0..1.
pub fn viridis(t: f32) -> [u8; 3] {
    const C: [[f32; 3]; 7] = [
        [0.277_727_33, 0.005_407_344_5, 0.334_099_8],
        [0.105_093_04, 1.404_613_5, 1.384_590_2],
        [-0.330_861_83, 0.214_847_56, 0.095_095_16],
        [-4.634_230_5, -5.799_101, -19.332_441],
        [6.228_27, 14.179_933, 56.690_55],
        [4.776_385, -13.745_145, -65.353_03],
        [-5.435_456, 4.645_852_6, 26.312_435],
    ];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let mut out = [0u8; 3];
    for (ch, o) in out.iter_mut().enumerate() {
        let mut v = C[6][ch];
        for k in (0..6).rev() {
            v = v * t + C[k][ch];
        }
        *o = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    }
    out
}

/// The map (same size as the photo) scaled to its maximum and blended over the photo: strong
/// regions get more colour so the photo stays readable where the map is low.
pub fn overlay(photo: &RgbImage, map: &[f32]) -> Result<RgbImage> {
    let (w, h) = photo.dimensions();
    if map.len() != w as usize * h as usize {
        return Err(Error::invalid(format!("map has {} values, photo is {}x{}", map.len(), w, h)));
    }
    let max = map.iter().copied().filter(|v| v.is_finite()).fold(0.0f32, f32::max);
    let scale = if max > 0.0 { 1.0 / max } else { 0.0 };
    let mut out = RgbImage::new(w, h);
    for (i, (px, o)) in photo.pixels().zip(out.pixels_mut()).enumerate() {
        let v = (map[i] * scale).clamp(0.0, 1.0);
        let c = viridis(v);
        let a = 0.15 + 0.6 * v;
        let mut rgb = [0u8; 3];
        for ch in 0..3 {
            rgb[ch] = ((1.0 - a) * px.0[ch] as f32 + a * c[ch] as f32).round().clamp(0.0, 255.0) as u8;
        }
        *o = Rgb(rgb);
    }
    Ok(out)
}

/// The map alone in colour (scaled to its maximum).
pub fn colorize(map: &[f32], width: u32, height: u32) -> Result<RgbImage> {
    if map.len() != width as usize * height as usize {
        return Err(Error::invalid(format!("map has {} values, expected {}x{}", map.len(), width, height)));
    }
    let max = map.iter().copied().filter(|v| v.is_finite()).fold(0.0f32, f32::max);
    let scale = if max > 0.0 { 1.0 / max } else { 0.0 };
    let mut out = RgbImage::new(width, height);
    for (o, v) in out.pixels_mut().zip(map) {
        *o = Rgb(viridis(v * scale));
    }
    Ok(out)
}

/// Line width that stays visible on small and large photos alike.
pub fn line_width(width: u32, height: u32) -> u32 {
    (width.min(height) / 150).clamp(2, 8)
}

/// Outlines a box (inclusive corners, clipped to the image) in `color` with a thin dark rim so it
/// shows on light and dark backgrounds.
pub fn draw_box(img: &mut RgbImage, b: &BBox, color: [u8; 3]) {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return;
    }
    let lw = line_width(w, h) as i64;
    let (x1, y1) = (b.x1.min(w - 1) as i64, b.y1.min(h - 1) as i64);
    let (x2, y2) = (b.x2.min(w - 1) as i64, b.y2.min(h - 1) as i64);
    let rim = [0u8, 0, 0];
    // Outer and inner rims first, then the coloured band between them.
    rect(img, x1 - lw, y1 - lw, x2 + lw, y2 + lw, 1, rim);
    rect(img, x1 + 1, y1 + 1, x2 - 1, y2 - 1, 1, rim);
    rect(img, x1 - lw + 1, y1 - lw + 1, x2 + lw - 1, y2 + lw - 1, lw as u32 - 1, color);
    rect(img, x1, y1, x2, y2, 1, color);
}

/// A rectangle outline `thick` pixels wide growing inwards from the given corners.
fn rect(img: &mut RgbImage, x1: i64, y1: i64, x2: i64, y2: i64, thick: u32, color: [u8; 3]) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let mut put = |x: i64, y: i64| {
        if x >= 0 && y >= 0 && x < w && y < h {
            img.put_pixel(x as u32, y as u32, Rgb(color));
        }
    };
    for t in 0..thick as i64 {
        let (ax, ay, bx, by) = (x1 + t, y1 + t, x2 - t, y2 - t);
        if ax > bx || ay > by {
            break;
        }
        for x in ax..=bx {
            put(x, ay);
            put(x, by);
        }
        for y in ay..=by {
            put(ax, y);
            put(bx, y);
        }
    }
}

/// PNG bytes of an image.
pub fn png_bytes(img: &RgbImage) -> Result<Vec<u8>> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)
        .map_err(|e| Error::Image { what: "PNG encoding".into(), msg: e.to_string() })?;
    Ok(buf.into_inner())
}

/// Writes an image as PNG atomically.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    crate::util::atomic::write_atomic(path, &png_bytes(img)?)
}

/// NPY version 1.0 bytes of a little-endian float32 array of the given shape (C order).
pub fn npy_bytes(data: &[f32], shape: &[usize]) -> Result<Vec<u8>> {
    let count: usize = shape.iter().product();
    if count != data.len() {
        return Err(Error::invalid(format!("array has {} values, shape {:?} needs {}", data.len(), shape, count)));
    }
    let dims = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}", dims);
    // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64 and
    // ended by a newline, as the format asks.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    if header.len() > u16::MAX as usize {
        return Err(Error::invalid("array shape too long for an NPY v1.0 header"));
    }
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// Writes a height×width float32 map as `.npy` atomically.
pub fn save_npy(data: &[f32], height: usize, width: usize, path: &Path) -> Result<()> {
    crate::util::atomic::write_atomic(path, &npy_bytes(data, &[height, width])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_matches_tabulated_ends_and_middle() {
        // Tabulated viridis (matplotlib _viridis_data) at 0, 0.5 and 1, in 0..255.
        let cases = [(0.0, [68.1, 1.2, 84.0]), (0.5, [33.0, 145.0, 140.0]), (1.0, [253.3, 231.1, 36.7])];
        for (t, want) in cases {
            let got = viridis(t);
            for ch in 0..3 {
                assert!((got[ch] as f32 - want[ch]).abs() <= 4.0, "t={t} ch={ch}: {got:?} vs {want:?}");
            }
        }
        // Perceptual maps brighten monotonically.
        let lum = |c: [u8; 3]| 0.2126 * c[0] as f32 + 0.7152 * c[1] as f32 + 0.0722 * c[2] as f32;
        for i in 0..100 {
            assert!(lum(viridis((i + 1) as f32 / 100.0)) >= lum(viridis(i as f32 / 100.0)) - 0.5);
        }
    }

    #[test]
    fn npy_header_is_aligned_and_parsable() {
        let b = npy_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hl) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + hl]).unwrap();
        assert!(header.contains("'shape': (2, 3)") && header.ends_with('\n'));
        assert_eq!(f32::from_le_bytes(b[10 + hl + 20..10 + hl + 24].try_into().unwrap()), 6.0);
        assert!(npy_bytes(&[1.0], &[2, 3]).is_err());
    }

    #[test]
    fn box_outline_is_drawn_inside_the_image() {
        let mut img = RgbImage::new(40, 30);
        draw_box(&mut img, &BBox { x1: 5, y1: 5, x2: 30, y2: 20 }, [255, 0, 0]);
        assert_eq!(img.get_pixel(5, 12).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(17, 5).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(17, 12).0, [0, 0, 0]);
        // A box reaching past the border is clipped, not a panic.
        draw_box(&mut img, &BBox { x1: 0, y1: 0, x2: 500, y2: 500 }, [0, 255, 0]);
    }
}
