//! The benign edits that happen to shared images, each named and parameterised.

use image::{Rgb, RgbImage, imageops};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Error;

/// One edit: a family (e.g. `jpeg`), a name with its parameter (`jpeg-q30`)
/// and the function that applies it.
#[derive(Clone)]
pub struct Transform {
    /// Family, for grouping in the report (`resize`, `jpeg`, `crop`, …).
    pub family: &'static str,
    /// Unique name with parameters, e.g. `resize-0.40`.
    pub name: String,
    /// Human-readable parameters.
    pub params: String,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Identity,
    Resize(f32),
    Jpeg(u8),
    Crop(f32),
    Letterbox(f32),
    Rotate90(u8),
    RotateSmall(f32),
    Mirror,
    Grey,
    Brightness(i32),
    Contrast(f32),
    Blur(f32),
    Sharpen(f32),
    Noise(f32),
    Caption(f32),
    Logo(f32),
    Screenshot,
    CaptionJpegScreenshot,
    Png,
    WebP,
}

impl std::fmt::Debug for Transform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

fn t(family: &'static str, name: String, params: String, kind: Kind) -> Transform {
    Transform {
        family,
        name,
        params,
        kind,
    }
}

/// A centred crop of `fraction` of each side, off each edge (0.015 = 1.5 %),
/// named `crop-{percent:.1}pct`: the bank-side crop variants of the private
/// path's evaluation (`examples/private_eval.rs`) use fractions that are not
/// in [`standard_set`], so they are not the edits they are measured on.
pub fn centred_crop(fraction: f32) -> Transform {
    t(
        "crop",
        format!("crop-{:.1}pct", fraction * 100.0),
        format!("{}% off each edge", fraction * 100.0),
        Kind::Crop(fraction),
    )
}

/// A resize by `scale` (triangle filter), named `resize-{scale:.2}`, as the
/// standard set's resizes: for bank-side variants at scales the standard set
/// does not use.
pub fn resize(scale: f32) -> Transform {
    t(
        "resize",
        format!("resize-{scale:.2}"),
        format!("scale {scale}× (triangle filter)"),
        Kind::Resize(scale),
    )
}

/// The fixed set the report uses, in report order.
pub fn standard_set() -> Vec<Transform> {
    let mut v = vec![t(
        "identity",
        "identity".into(),
        "none".into(),
        Kind::Identity,
    )];
    for s in [0.25f32, 0.4, 0.5, 0.75, 1.5, 2.0] {
        v.push(t(
            "resize",
            format!("resize-{s:.2}"),
            format!("scale {s}× (triangle filter)"),
            Kind::Resize(s),
        ));
    }
    for q in [20u8, 30, 50, 70, 95] {
        v.push(t(
            "jpeg",
            format!("jpeg-q{q}"),
            format!("JPEG re-encode at quality {q}, 4:2:0"),
            Kind::Jpeg(q),
        ));
    }
    for c in [0.01f32, 0.02, 0.05, 0.10, 0.20] {
        v.push(t(
            "crop",
            format!("crop-{:02}pct", (c * 100.0).round()),
            format!("{}% off each edge", c * 100.0),
            Kind::Crop(c),
        ));
    }
    for p in [0.10f32, 0.25] {
        v.push(t(
            "pad",
            format!("letterbox-{:02}pct", (p * 100.0).round()),
            format!("black bars of {}% of the height above and below", p * 100.0),
            Kind::Letterbox(p),
        ));
    }
    for (k, deg) in [(1u8, 90), (2, 180), (3, 270)] {
        v.push(t(
            "rotate",
            format!("rotate-{deg}"),
            format!("rotate {deg}°"),
            Kind::Rotate90(k),
        ));
    }
    for a in [2.0f32, 5.0] {
        v.push(t(
            "rotate-small",
            format!("rotate-{a}deg"),
            format!("rotate {a}° about the centre, bilinear, black corners"),
            Kind::RotateSmall(a),
        ));
    }
    v.push(t(
        "mirror",
        "mirror".into(),
        "left-right mirror".into(),
        Kind::Mirror,
    ));
    v.push(t(
        "grey",
        "greyscale".into(),
        "convert to grey (kept as RGB)".into(),
        Kind::Grey,
    ));
    for b in [-40i32, 40] {
        v.push(t(
            "brightness",
            format!("brightness{b:+}"),
            format!("add {b} to each channel"),
            Kind::Brightness(b),
        ));
    }
    for c in [-30.0f32, 30.0] {
        v.push(t(
            "contrast",
            format!("contrast{c:+}"),
            format!("contrast {c:+} (image::imageops::contrast)"),
            Kind::Contrast(c),
        ));
    }
    for s in [1.0f32, 3.0] {
        v.push(t(
            "blur",
            format!("blur-sigma{s}"),
            format!("Gaussian blur σ = {s}"),
            Kind::Blur(s),
        ));
    }
    v.push(t(
        "sharpen",
        "sharpen".into(),
        "unsharp mask σ = 1.5, threshold 0".into(),
        Kind::Sharpen(1.5),
    ));
    for s in [8.0f32, 20.0] {
        v.push(t(
            "noise",
            format!("noise-sigma{s}"),
            format!("Gaussian noise σ = {s} per channel (seeded)"),
            Kind::Noise(s),
        ));
    }
    for h in [0.10f32, 0.20] {
        v.push(t(
            "caption",
            format!("caption-{:02}pct", (h * 100.0).round()),
            format!(
                "white caption bar {}% of the height with black text-like blocks",
                h * 100.0
            ),
            Kind::Caption(h),
        ));
    }
    for s in [0.10f32, 0.25] {
        v.push(t(
            "logo",
            format!("logo-{:02}pct", (s * 100.0).round()),
            format!("50%-opaque logo of {}% of the width in a corner", s * 100.0),
            Kind::Logo(s),
        ));
    }
    v.push(t(
        "screenshot",
        "screenshot".into(),
        "grey borders, a status bar and a title bar around the image".into(),
        Kind::Screenshot,
    ));
    v.push(t(
        "screenshot",
        "caption-jpeg-screenshot".into(),
        "caption bar 10% of the height, JPEG quality 75, then a screenshot frame".into(),
        Kind::CaptionJpegScreenshot,
    ));
    v.push(t(
        "format",
        "png".into(),
        "PNG round trip (lossless)".into(),
        Kind::Png,
    ));
    v.push(t(
        "format",
        "webp".into(),
        "WebP round trip (lossless encoder)".into(),
        Kind::WebP,
    ));
    v
}

impl Transform {
    /// Applies the edit. `seed` makes random edits (noise) reproducible.
    pub fn apply(&self, img: &RgbImage, seed: u64) -> Result<RgbImage, Error> {
        let (w, h) = img.dimensions();
        Ok(match self.kind {
            Kind::Identity => img.clone(),
            Kind::Resize(s) => {
                let nw = ((w as f32 * s).round() as u32).max(1);
                let nh = ((h as f32 * s).round() as u32).max(1);
                imageops::resize(img, nw, nh, imageops::FilterType::Triangle)
            }
            Kind::Jpeg(q) => {
                let jpeg = bulwark_pdq::encode_jpeg(&to_pdq(img), q)?;
                from_pdq(bulwark_pdq::decode(&jpeg, &bulwark_pdq::Limits::default())?)
            }
            Kind::Crop(c) => {
                let dx = (w as f32 * c).round() as u32;
                let dy = (h as f32 * c).round() as u32;
                imageops::crop_imm(img, dx, dy, w - 2 * dx, h - 2 * dy).to_image()
            }
            Kind::Letterbox(p) => {
                let bar = (h as f32 * p).round() as u32;
                let mut out = RgbImage::new(w, h + 2 * bar);
                imageops::overlay(&mut out, img, 0, i64::from(bar));
                out
            }
            Kind::Rotate90(k) => match k {
                1 => imageops::rotate90(img),
                2 => imageops::rotate180(img),
                _ => imageops::rotate270(img),
            },
            Kind::RotateSmall(deg) => rotate_bilinear(img, deg),
            Kind::Mirror => imageops::flip_horizontal(img),
            Kind::Grey => {
                let g = imageops::grayscale(img);
                RgbImage::from_fn(w, h, |x, y| {
                    let v = g.get_pixel(x, y)[0];
                    Rgb([v, v, v])
                })
            }
            Kind::Brightness(b) => imageops::brighten(img, b),
            Kind::Contrast(c) => imageops::contrast(img, c),
            Kind::Blur(s) => imageops::blur(img, s),
            Kind::Sharpen(s) => imageops::unsharpen(img, s, 0),
            Kind::Noise(s) => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut out = img.clone();
                for p in out.pixels_mut() {
                    for c in p.0.iter_mut() {
                        // Box-Muller from two uniforms.
                        let (u1, u2): (f32, f32) = (rng.r#gen::<f32>().max(1e-7), rng.r#gen());
                        let n = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
                        *c = (f32::from(*c) + n * s).round().clamp(0.0, 255.0) as u8;
                    }
                }
                out
            }
            Kind::Caption(frac) => caption(img, frac, seed),
            Kind::Logo(frac) => logo(img, frac),
            Kind::Screenshot => screenshot(img),
            Kind::CaptionJpegScreenshot => {
                let c = caption(img, 0.10, seed);
                let jpeg = bulwark_pdq::encode_jpeg(&to_pdq(&c), 75)?;
                let back = from_pdq(bulwark_pdq::decode(&jpeg, &bulwark_pdq::Limits::default())?);
                screenshot(&back)
            }
            Kind::Png => round_trip(img, image::ImageFormat::Png)?,
            Kind::WebP => round_trip(img, image::ImageFormat::WebP)?,
        })
    }
}

pub(crate) fn to_pdq(img: &RgbImage) -> bulwark_pdq::Image {
    bulwark_pdq::Image {
        width: img.width(),
        height: img.height(),
        channels: 3,
        pixels: img.as_raw().clone(),
    }
}

pub(crate) fn from_pdq(img: bulwark_pdq::Image) -> RgbImage {
    let (w, h) = (img.width, img.height);
    if img.channels == 3 {
        RgbImage::from_raw(w, h, img.pixels).unwrap_or_else(|| RgbImage::new(w, h))
    } else {
        RgbImage::from_fn(w, h, |x, y| {
            let v = img.pixels[(y * w + x) as usize];
            Rgb([v, v, v])
        })
    }
}

fn round_trip(img: &RgbImage, format: image::ImageFormat) -> Result<RgbImage, Error> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, format)
        .map_err(|e| Error::Transform(format!("{format:?} encode: {e}")))?;
    let back = bulwark_pdq::decode(buf.get_ref(), &bulwark_pdq::Limits::default())?;
    Ok(from_pdq(back))
}

fn rotate_bilinear(img: &RgbImage, deg: f32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (s, c) = deg.to_radians().sin_cos();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    RgbImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        let sx = c * dx + s * dy + cx - 0.5;
        let sy = -s * dx + c * dy + cy - 0.5;
        if sx < 0.0 || sy < 0.0 || sx >= (w - 1) as f32 || sy >= (h - 1) as f32 {
            return Rgb([0, 0, 0]);
        }
        let (x0, y0) = (sx.floor() as u32, sy.floor() as u32);
        let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
        let p = |xx: u32, yy: u32, k: usize| f32::from(img.get_pixel(xx, yy)[k]);
        Rgb(std::array::from_fn(|k| {
            let top = p(x0, y0, k) * (1.0 - fx) + p(x0 + 1, y0, k) * fx;
            let bot = p(x0, y0 + 1, k) * (1.0 - fx) + p(x0 + 1, y0 + 1, k) * fx;
            (top * (1.0 - fy) + bot * fy).round() as u8
        }))
    })
}

/// A white bar below the image with rows of black blocks standing in for text
/// (no fonts needed, the same effect on the hash).
fn caption(img: &RgbImage, frac: f32, seed: u64) -> RgbImage {
    let (w, h) = img.dimensions();
    let bar = ((h as f32 * frac).round() as u32).max(4);
    let mut out = RgbImage::from_pixel(w, h + bar, Rgb([255, 255, 255]));
    imageops::overlay(&mut out, img, 0, 0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC0FFEE);
    let line_h = (bar / 3).max(2);
    let mut x = w / 20;
    while x < w - w / 20 {
        let word = rng.gen_range(w / 40..w / 10).max(2);
        let y0 = h + line_h;
        for yy in y0..(y0 + line_h).min(h + bar) {
            for xx in x..(x + word).min(w) {
                out.put_pixel(xx, yy, Rgb([0, 0, 0]));
            }
        }
        x += word + w / 60 + 1;
    }
    out
}

/// A half-transparent two-tone badge in the bottom-right corner.
fn logo(img: &RgbImage, frac: f32) -> RgbImage {
    let (w, h) = img.dimensions();
    let size = ((w as f32 * frac).round() as u32).clamp(2, w.min(h));
    let mut out = img.clone();
    let (x0, y0) = (w - size - w / 40, h - size - h / 40);
    for y in 0..size {
        for x in 0..size {
            let ring = (x as i64 - size as i64 / 2).pow(2) + (y as i64 - size as i64 / 2).pow(2)
                < (size as i64 / 3).pow(2);
            let c = if ring {
                [230u8, 40, 40]
            } else {
                [255u8, 255, 255]
            };
            let p = out.get_pixel_mut(x0 + x, y0 + y);
            for k in 0..3 {
                p[k] = ((u16::from(p[k]) + u16::from(c[k])) / 2) as u8;
            }
        }
    }
    out
}

/// The image inside a phone screenshot: status bar, title bar, grey margins.
fn screenshot(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    let (margin, status, title) = (w / 16, h / 20, h / 10);
    let mut out = RgbImage::from_pixel(
        w + 2 * margin,
        h + status + title + margin,
        Rgb([238, 238, 238]),
    );
    for y in 0..status {
        for x in 0..out.width() {
            out.put_pixel(x, y, Rgb([20, 20, 20]));
        }
    }
    for y in status..status + title {
        for x in 0..out.width() {
            out.put_pixel(x, y, Rgb([33, 150, 243]));
        }
    }
    imageops::overlay(&mut out, img, i64::from(margin), i64::from(status + title));
    out
}
