//! Image decoding and preprocessing, checked against hand-computed values.
#[macro_use]
mod common;
use chip::runtime::spec::ResizeMode;
use chip::runtime::preprocess::{Preprocess, MAX_SIDE};
use chip::Error;
use image::{ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba};
use std::io::Cursor;
use std::path::{Path, PathBuf};

fn encode<P, C>(img: ImageBuffer<P, C>) -> Vec<u8>
where
    image::DynamicImage: From<ImageBuffer<P, C>>,
    P: image::Pixel,
{
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::from(img).write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Identity normalisation: outputs are raw 0..255 pixel values.
fn raw(h: usize, w: usize) -> Preprocess {
    Preprocess { height: h, width: w, scale: 1.0, mean: [0.0; 3], std: [1.0; 3], ..Preprocess::default() }
}

/// The pixel (channel c, row y, column x) of NCHW data of an h×w image.
fn at(data: &[f32], h: usize, w: usize, c: usize, y: usize, x: usize) -> f32 {
    data[c * h * w + y * w + x]
}

#[test]
fn normalisation_matches_hand_computed_values() {
    // 2×2 image at the input size: no resampling, so every value is known exactly.
    let mut img = image::RgbImage::new(2, 2);
    img.put_pixel(0, 0, Rgb([0, 0, 0]));
    img.put_pixel(1, 0, Rgb([255, 255, 255]));
    img.put_pixel(0, 1, Rgb([10, 20, 30]));
    img.put_pixel(1, 1, Rgb([200, 100, 50]));
    let p = Preprocess { mean: [10.0, 20.0, 30.0], std: [2.0, 4.0, 5.0], ..raw(2, 2) };
    let out = p.from_rgb8(&img).unwrap();
    assert_eq!((out.size.width, out.size.height), (2, 2));
    #[rustfmt::skip]
    let expected = [
        // R: (v - 10) / 2 at (0,0) (1,0) (0,1) (1,1) in row-major order
        -5.0, 122.5, 0.0, 95.0,
        // G: (v - 20) / 4
        -5.0, 58.75, 0.0, 20.0,
        // B: (v - 30) / 5
        -6.0, 45.0, 0.0, 4.0,
    ];
    assert_eq!(out.data.len(), 12);
    for (i, (a, e)) in out.data.iter().zip(expected.iter()).enumerate() {
        assert!((a - e).abs() < 1e-5, "value {i}: {a} vs {e}");
    }
}

#[test]
fn imagenet_defaults_on_a_mid_grey_pixel() {
    let img = image::RgbImage::from_pixel(3, 3, Rgb([128, 128, 128]));
    let p = Preprocess { height: 3, width: 3, ..Preprocess::default() };
    let out = p.from_rgb8(&img).unwrap();
    // (128 - 0.485*255) / (0.229*255) etc.
    let want = [(128.0 - 123.675) / 58.395, (128.0 - 116.28) / 57.12, (128.0 - 103.53) / 57.375];
    for c in 0..3 {
        for i in 0..9 {
            assert!((out.data[c * 9 + i] - want[c]).abs() < 1e-5);
        }
    }
}

#[test]
fn constant_image_stays_constant_after_resize_and_one_pixel_works() {
    for (w, h) in [(37u32, 23u32), (1, 1), (1, 300), (500, 2)] {
        let img = image::RgbImage::from_pixel(w, h, Rgb([12, 34, 56]));
        let out = raw(8, 9).from_rgb8(&img).unwrap();
        assert_eq!(out.data.len(), 3 * 8 * 9);
        assert_eq!((out.size.width, out.size.height), (w, h));
        for c in 0..3 {
            let v = [12.0, 34.0, 56.0][c];
            for i in 0..72 {
                assert!((out.data[c * 72 + i] - v).abs() < 1e-4, "{w}x{h} channel {c}");
            }
        }
    }
}

#[test]
fn bilinear_upsampling_of_a_two_pixel_ramp() {
    // 2×1 image (0 | 255) stretched to width 4: triangle filter with pixel centres at
    // (x + 0.5) * 2/4 - 0.5 = -0.25, 0.25, 0.75, 1.25 → clamped weights give 0, 63.75, 191.25, 255.
    let mut img = image::RgbImage::new(2, 1);
    img.put_pixel(0, 0, Rgb([0, 0, 0]));
    img.put_pixel(1, 0, Rgb([255, 255, 255]));
    let out = raw(1, 4).from_rgb8(&img).unwrap();
    let got: Vec<f32> = (0..4).map(|x| at(&out.data, 1, 4, 0, 0, x)).collect();
    let want = [0.0, 63.75, 191.25, 255.0];
    for (g, w) in got.iter().zip(want) {
        // The image crate rounds to u8 after resizing.
        assert!((g - w).abs() <= 1.0, "{got:?} vs {want:?}");
    }
    assert!(got.windows(2).all(|p| p[0] < p[1]), "monotone ramp: {got:?}");
}

#[test]
fn centre_crop_versus_stretch() {
    // 40×20: red left quarter, green middle half, blue right quarter.
    let img = image::RgbImage::from_fn(40, 20, |x, _| match x {
        0..=9 => Rgb([255, 0, 0]),
        10..=29 => Rgb([0, 255, 0]),
        _ => Rgb([0, 0, 255]),
    });
    // The centred square crop is the green middle (resized to 16×8 first, as torchvision does, so the
    // filter reaches one resized pixel into the red and blue quarters at the crop's edges).
    let crop = Preprocess { resize: ResizeMode::Crop, crop_ratio: 1.0, ..raw(8, 8) }.from_rgb8(&img).unwrap();
    for y in 0..8 {
        for x in 1..7 {
            assert_eq!(
                [at(&crop.data, 8, 8, 0, y, x), at(&crop.data, 8, 8, 1, y, x), at(&crop.data, 8, 8, 2, y, x)],
                [0.0, 255.0, 0.0],
                "crop pixel ({x},{y})"
            );
        }
        assert!(at(&crop.data, 8, 8, 1, y, 0) > 200.0 && at(&crop.data, 8, 8, 1, y, 7) > 200.0);
    }
    assert_eq!((crop.size.width, crop.size.height), (40, 20));
    // The window the crop shows, in original pixels: the middle half.
    assert_eq!(crop.window, Some(chip::runtime::preprocess::Window { x: 10.0, y: 0.0, width: 20.0, height: 20.0 }));
    // Stretching keeps the whole picture: left column red, right column blue, middle green.
    let st = raw(8, 8).from_rgb8(&img).unwrap();
    for y in 0..8 {
        assert_eq!(at(&st.data, 8, 8, 0, y, 0), 255.0);
        assert_eq!(at(&st.data, 8, 8, 2, y, 0), 0.0);
        assert_eq!(at(&st.data, 8, 8, 2, y, 7), 255.0);
        assert_eq!(at(&st.data, 8, 8, 0, y, 7), 0.0);
        assert_eq!(at(&st.data, 8, 8, 1, y, 4), 255.0);
    }
    // A tall image is cropped vertically: 10×40, top and bottom quarters black, middle white.
    let tall = image::RgbImage::from_fn(10, 40, |_, y| if (10..30).contains(&y) { Rgb([255; 3]) } else { Rgb([0; 3]) });
    let c = Preprocess { resize: ResizeMode::Crop, crop_ratio: 1.0, ..raw(4, 2) }.from_rgb8(&tall).unwrap();
    // Target aspect 2 wide : 4 high → resized to 2×8, the middle 2×4: the white middle, whose two
    // inner rows see no black through the filter.
    assert!(c.data[2..6].iter().all(|&v| v == 255.0), "{:?}", c.data);
    assert_eq!(c.window, Some(chip::runtime::preprocess::Window { x: 0.0, y: 10.0, width: 10.0, height: 20.0 }));
}

#[test]
fn grey_png_becomes_three_equal_channels() {
    let img = ImageBuffer::from_fn(5, 4, |x, y| Luma([(x * 40 + y) as u8]));
    let out = raw(4, 5).decode(&encode(img)).unwrap();
    for y in 0..4 {
        for x in 0..5 {
            let v = (x * 40 + y) as f32;
            for c in 0..3 {
                assert_eq!(at(&out.data, 4, 5, c, y, x), v);
            }
        }
    }
    // Grey with alpha too.
    let ga = ImageBuffer::from_pixel(3, 3, LumaA([77u8, 10]));
    let out = raw(3, 3).decode(&encode(ga)).unwrap();
    assert!(out.data.iter().all(|&v| v == 77.0));
}

#[test]
fn rgba_png_keeps_colour_and_drops_alpha() {
    let img = ImageBuffer::from_fn(3, 2, |x, y| Rgba([x as u8 * 50, y as u8 * 90, 7, if x == 0 { 0 } else { 255 }]));
    let out = raw(2, 3).decode(&encode(img)).unwrap();
    for y in 0..2 {
        for x in 0..3 {
            assert_eq!(at(&out.data, 2, 3, 0, y, x), (x * 50) as f32);
            assert_eq!(at(&out.data, 2, 3, 1, y, x), (y * 90) as f32);
            assert_eq!(at(&out.data, 2, 3, 2, y, x), 7.0);
        }
    }
}

#[test]
fn sixteen_bit_png_scales_to_eight_bit() {
    // 257·v in 16 bits is exactly v in 8 bits.
    let img = ImageBuffer::from_fn(2, 2, |x, y| Rgb([65535u16, 257 * (x as u16 * 100 + y as u16), 0]));
    let out = raw(2, 2).decode(&encode(img)).unwrap();
    for y in 0..2 {
        for x in 0..2 {
            assert_eq!(at(&out.data, 2, 2, 0, y, x), 255.0);
            assert_eq!(at(&out.data, 2, 2, 1, y, x), (x * 100 + y) as f32);
            assert_eq!(at(&out.data, 2, 2, 2, y, x), 0.0);
        }
    }
    let grey16 = ImageBuffer::from_pixel(2, 2, Luma([257u16 * 33]));
    let out = raw(2, 2).decode(&encode(grey16)).unwrap();
    assert!(out.data.iter().all(|&v| v == 33.0));
}

#[test]
fn jpeg_bmp_and_tiff_decode_too() {
    let img = image::RgbImage::from_pixel(16, 16, Rgb([100, 150, 200]));
    for fmt in [ImageFormat::Jpeg, ImageFormat::Bmp, ImageFormat::Tiff] {
        let mut buf = Cursor::new(Vec::new());
        image::DynamicImage::from(img.clone()).write_to(&mut buf, fmt).unwrap();
        let out = raw(4, 4).decode(buf.get_ref()).unwrap();
        for c in 0..3 {
            let want = [100.0, 150.0, 200.0][c];
            for i in 0..16 {
                // JPEG is lossy on a flat colour by at most a few levels.
                assert!((out.data[c * 16 + i] - want).abs() <= 3.0, "{fmt:?}");
            }
        }
    }
}

fn image_error(r: chip::Result<chip::runtime::preprocess::Prepared>) -> (String, String) {
    match r {
        Err(Error::Image { what, msg }) => (what, msg),
        other => panic!("expected Error::Image, got {other:?}"),
    }
}

#[test]
fn corrupt_bytes_give_a_clear_error() {
    let (what, msg) = image_error(raw(4, 4).decode(b"definitely not an image, just text"));
    assert!(what.contains("34 bytes"), "{what}");
    assert!(msg.contains("unrecognised format"), "{msg}");
    let (_, msg) = image_error(raw(4, 4).decode(&[]));
    assert!(msg.contains("empty"), "{msg}");
    // A real PNG cut in half: the header is fine, the pixel data is not.
    let mut png = encode(image::RgbImage::from_fn(64, 64, |x, y| Rgb([x as u8, y as u8, (x ^ y) as u8])));
    png.truncate(png.len() / 2);
    let (_, msg) = image_error(raw(4, 4).decode(&png));
    assert!(msg.contains("Png"), "{msg}");
    // PNG signature and nothing else.
    let (_, msg) = image_error(raw(4, 4).decode(&png[..8]));
    assert!(msg.contains("Png"), "{msg}");
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A PNG signature and IHDR declaring `w`×`h` RGB8, then an empty IDAT and IEND.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[]);
    chunk(b"IEND", &[]);
    out
}

#[test]
fn declared_sizes_are_checked_before_decoding() {
    // Sanity: the hand-made header is read as the declared size.
    assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    let (_, msg) = image_error(raw(4, 4).decode(&png_header(MAX_SIDE + 1, 10)));
    assert!(msg.contains("too large") && msg.contains(&(MAX_SIDE + 1).to_string()), "{msg}");
    let (_, msg) = image_error(raw(4, 4).decode(&png_header(100_000, 100_000)));
    assert!(msg.contains("too large"), "{msg}");
    // Zero width is refused (by the PNG decoder or our own check), never a panic.
    let (_, msg) = image_error(raw(4, 4).decode(&png_header(0, 10)));
    assert!(!msg.is_empty());
    // A plausible size with no pixel data fails at decoding.
    let (_, msg) = image_error(raw(4, 4).decode(&png_header(5, 5)));
    assert!(msg.contains("decode"), "{msg}");
    // In-memory images are checked the same way.
    let (_, msg) = image_error(raw(4, 4).from_rgb8(&image::RgbImage::new(0, 3)));
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn missing_file_names_the_path() {
    let dir = std::env::temp_dir().join(format!("chip-pre-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("nope.png");
    match raw(4, 4).load(&path) {
        Err(Error::Io { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Error::Io, got {other:?}"),
    }
    // A corrupt file names its path.
    let bad = dir.join("bad.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nbroken").unwrap();
    let (what, _) = image_error(raw(4, 4).load(&bad));
    assert!(what.contains("bad.png"), "{what}");
    // And a good file loads with its original size.
    let good = dir.join("good.png");
    std::fs::write(&good, encode(image::RgbImage::from_pixel(7, 5, Rgb([1, 2, 3])))).unwrap();
    let out = raw(4, 4).load(&good).unwrap();
    assert_eq!((out.size.width, out.size.height), (7, 5));
    assert_eq!(out.data[0], 1.0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn invalid_settings_are_refused() {
    let img = image::RgbImage::from_pixel(2, 2, Rgb([1, 2, 3]));
    for p in [
        Preprocess { std: [1.0, 0.0, 1.0], ..raw(2, 2) },
        Preprocess { mean: [f32::NAN, 0.0, 0.0], ..raw(2, 2) },
        raw(0, 2),
        raw(2, MAX_SIDE as usize + 1),
    ] {
        assert!(matches!(p.from_rgb8(&img), Err(Error::InvalidArgument(_))), "{p:?}");
    }
}

fn encoded(fmt: ImageFormat) -> Vec<u8> {
    // Noise, so that every part of the file carries pixels.
    let mut rng = chip::util::rng::Rng::new(7);
    let img = image::RgbImage::from_fn(64, 48, |_, _| {
        let v = rng.next_u64();
        Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
    });
    let mut buf = Cursor::new(Vec::new());
    image::DynamicImage::from(img).write_to(&mut buf, fmt).unwrap();
    buf.into_inner()
}

/// An image cut short is an error in every format (the JPEG decoder alone used to fill the missing
/// part with grey and succeed); the whole file still decodes.
#[test]
fn truncated_images_of_every_format_are_refused() {
    for fmt in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Bmp, ImageFormat::Tiff, ImageFormat::WebP] {
        let bytes = encoded(fmt);
        raw(4, 4).decode(&bytes).unwrap_or_else(|e| panic!("{fmt:?} whole: {e}"));
        for cut in [bytes.len() / 2, bytes.len() * 9 / 10, bytes.len() - 1] {
            let r = raw(4, 4).decode(&bytes[..cut]);
            assert!(r.is_err(), "{fmt:?} cut to {cut} of {} bytes decoded", bytes.len());
        }
    }
}

/// Real photos: each decodes whole, also with trailing bytes after the end marker (as some cameras
/// write), and fails cut anywhere from the first scan on.
#[test]
fn truncated_real_jpeg_photos_are_refused() {
    require_setup!();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/images");
    let mut photos: Vec<PathBuf> = ["aib", "mpl"]
        .iter()
        .flat_map(|d| std::fs::read_dir(dir.join(d)).expect("data/images (run scripts/setup.sh)"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    photos.sort();
    assert!(photos.len() >= 20, "{photos:?}");
    for p in &photos {
        let bytes = std::fs::read(p).unwrap();
        assert!(chip::runtime::preprocess::jpeg_is_complete(&bytes), "{}", p.display());
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0u8; 64]);
        assert!(chip::runtime::preprocess::jpeg_is_complete(&padded), "{} with padding", p.display());
    }
    for p in photos.iter().take(5) {
        let bytes = std::fs::read(p).unwrap();
        raw(8, 8).decode(&bytes).unwrap();
        for cut in [bytes.len() / 2, bytes.len() * 3 / 4, bytes.len() - 2] {
            let (_, msg) = image_error(raw(8, 8).decode(&bytes[..cut]));
            assert!(msg.contains("Jpeg"), "{} cut to {cut}: {msg}", p.display());
        }
    }
}
