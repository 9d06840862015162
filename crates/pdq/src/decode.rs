//! Safe decoding of untrusted image bytes into the pixels the reference hashes.
//!
//! JPEG goes through libjpeg-turbo (the `turbojpeg` crate, vendored source) with
//! its default ISLOW IDCT and fancy upsampling: the pixels the reference sees.
//! PNG, GIF (first frame), WebP, BMP and TIFF go through the `image` crate.
//! Every path checks the header against [`Limits`] before it allocates.

use std::io::Cursor;

use crate::Error;

/// Caps on what a decode may cost. The defaults suit a server hashing uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest accepted input, in bytes (default 64 MiB).
    pub max_bytes: u64,
    /// Largest accepted width × height (default 50 megapixels; hashing costs
    /// about 11 bytes of memory per pixel).
    pub max_pixels: u64,
    /// Largest accepted width or height (default 20,000).
    pub max_dimension: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 20,
            max_pixels: 50_000_000,
            max_dimension: 20_000,
        }
    }
}

impl Limits {
    /// Limits with the given caps.
    pub fn new(max_bytes: u64, max_pixels: u64, max_dimension: u32) -> Self {
        Limits {
            max_bytes,
            max_pixels,
            max_dimension,
        }
    }

    fn check_dimensions(&self, width: u64, height: u64) -> Result<(), Error> {
        if width == 0 || height == 0 {
            return Err(Error::Decode(format!(
                "image has no pixels ({width}×{height})"
            )));
        }
        if width > u64::from(self.max_dimension) || height > u64::from(self.max_dimension) {
            return Err(Error::LimitExceeded(format!(
                "{width}×{height} exceeds the {} pixel side limit",
                self.max_dimension
            )));
        }
        if width * height > self.max_pixels {
            return Err(Error::LimitExceeded(format!(
                "{width}×{height} = {} pixels exceeds the {} pixel limit",
                width * height,
                self.max_pixels
            )));
        }
        Ok(())
    }
}

/// Decoded pixels: interleaved RGB (3 channels) or grey (1 channel), 8 bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// 1 (grey) or 3 (RGB).
    pub channels: u8,
    /// `width * height * channels` bytes, row-major.
    pub pixels: Vec<u8>,
}

/// Image formats Bulwark decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// JPEG (libjpeg-turbo).
    Jpeg,
    /// PNG.
    Png,
    /// GIF (first frame).
    Gif,
    /// WebP.
    WebP,
    /// BMP.
    Bmp,
    /// TIFF.
    Tiff,
}

/// Identifies the format from the content's first bytes (never from a file name).
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(Format::Jpeg);
    }
    match image::guess_format(bytes).ok()? {
        image::ImageFormat::Png => Some(Format::Png),
        image::ImageFormat::Gif => Some(Format::Gif),
        image::ImageFormat::WebP => Some(Format::WebP),
        image::ImageFormat::Bmp => Some(Format::Bmp),
        image::ImageFormat::Tiff => Some(Format::Tiff),
        _ => None,
    }
}

/// Decodes untrusted bytes within `limits`.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Image, Error> {
    if bytes.is_empty() {
        return Err(Error::Decode("empty input (0 bytes)".into()));
    }
    if bytes.len() as u64 > limits.max_bytes {
        return Err(Error::LimitExceeded(format!(
            "{} bytes exceeds the {} byte input limit",
            bytes.len(),
            limits.max_bytes
        )));
    }
    match sniff(bytes) {
        Some(Format::Jpeg) => decode_jpeg(bytes, limits),
        Some(f) => decode_other(bytes, f, limits),
        None => Err(Error::Unsupported(
            "not a recognised image (JPEG, PNG, GIF, WebP, BMP or TIFF)".into(),
        )),
    }
}

fn decode_jpeg(bytes: &[u8], limits: &Limits) -> Result<Image, Error> {
    match decode_jpeg_once(bytes, limits) {
        // A defect in a metadata segment (say a malformed ICC profile) makes
        // libjpeg warn, and TurboJPEG turns the warning into an error. Such
        // segments never change pixels: drop them and decode again.
        Err(Error::Decode(msg)) if is_harmless_jpeg_warning(&msg) => {
            match strip_metadata_segments(bytes) {
                Some(clean) => decode_jpeg_once(&clean, limits),
                None => Err(Error::Decode(msg)),
            }
        }
        r => r,
    }
}

/// Copies a JPEG without its APP1–APP13, APP15 and COM segments (EXIF, XMP,
/// ICC, comments), which libjpeg does not use to compute pixels. APP0 (JFIF)
/// and APP14 (Adobe: colour transform) are kept. None if the marker
/// structure before the scan is not well formed.
fn strip_metadata_segments(b: &[u8]) -> Option<Vec<u8>> {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..2]);
    let mut i = 2;
    loop {
        if i + 4 > b.len() || b[i] != 0xFF {
            return None;
        }
        let marker = b[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xDA {
            // Start of scan: the rest is entropy-coded data, copied as is.
            out.extend_from_slice(&b[i..]);
            return Some(out);
        }
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        if len < 2 || i + 2 + len > b.len() {
            return None;
        }
        let metadata = matches!(marker, 0xE1..=0xED | 0xEF | 0xFE);
        if !metadata {
            out.extend_from_slice(&b[i..i + 2 + len]);
        }
        i += 2 + len;
    }
}

fn decode_jpeg_once(bytes: &[u8], limits: &Limits) -> Result<Image, Error> {
    use turbojpeg::{Colorspace, PixelFormat};
    let jpeg_err = |e: turbojpeg::Error| Error::Decode(format!("JPEG: {e}"));
    let mut d = turbojpeg::Decompressor::new().map_err(jpeg_err)?;
    let header = d.read_header(bytes).map_err(jpeg_err)?;
    limits.check_dimensions(header.width as u64, header.height as u64)?;
    let (w, h) = (header.width, header.height);
    let format = match header.colorspace {
        Colorspace::Gray => PixelFormat::GRAY,
        Colorspace::CMYK | Colorspace::YCCK => PixelFormat::CMYK,
        _ => PixelFormat::RGB,
    };
    let mut out = turbojpeg::Image {
        pixels: vec![0u8; w * h * format.size()],
        width: w,
        pitch: w * format.size(),
        height: h,
        format,
    };
    d.decompress(bytes, out.as_deref_mut()).map_err(jpeg_err)?;
    let (channels, pixels) = match format {
        PixelFormat::GRAY => (1, out.pixels),
        PixelFormat::CMYK => (3, cmyk_to_rgb(&out.pixels)),
        _ => (3, out.pixels),
    };
    Ok(Image {
        width: w as u32,
        height: h as u32,
        channels,
        pixels,
    })
}

/// Warnings about metadata segments, which do not affect pixels. Truncation
/// ("Premature end of JPEG file") and damaged scans are not among them.
fn is_harmless_jpeg_warning(msg: &str) -> bool {
    msg.contains("bad ICC marker")
}

/// CMYK (as libjpeg returns it from Adobe-style JPEGs, which store inverted
/// ink values) to RGB the way ImageMagick does it for the reference hasher:
/// each channel is `c · k / 255`, rounded to nearest, on the stored values.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        let k = u32::from(p[3]);
        for &c in &p[..3] {
            rgb.push(((u32::from(c) * k + 127) / 255) as u8);
        }
    }
    rgb
}

/// Encodes decoded pixels as a baseline JPEG (4:2:0 for colour) at `quality`
/// (1–100) with libjpeg-turbo: for benchmarks and for re-encoding transforms
/// in the detection-quality harness.
pub fn encode_jpeg(img: &Image, quality: u8) -> Result<Vec<u8>, Error> {
    use turbojpeg::{PixelFormat, Subsamp};
    let err = |e: turbojpeg::Error| Error::Unsupported(format!("JPEG encoding: {e}"));
    let (format, subsamp) = if img.channels == 1 {
        (PixelFormat::GRAY, Subsamp::Gray)
    } else {
        (PixelFormat::RGB, Subsamp::Sub2x2)
    };
    let mut c = turbojpeg::Compressor::new().map_err(err)?;
    c.set_quality(i32::from(quality.clamp(1, 100)))
        .map_err(err)?;
    c.set_subsamp(subsamp).map_err(err)?;
    let w = img.width as usize;
    c.compress_to_vec(turbojpeg::Image {
        pixels: &img.pixels[..],
        width: w,
        pitch: w * usize::from(img.channels),
        height: img.height as usize,
        format,
    })
    .map_err(err)
}

fn decode_other(bytes: &[u8], format: Format, limits: &Limits) -> Result<Image, Error> {
    let image_format = match format {
        Format::Png => image::ImageFormat::Png,
        Format::Gif => image::ImageFormat::Gif,
        Format::WebP => image::ImageFormat::WebP,
        Format::Bmp => image::ImageFormat::Bmp,
        Format::Tiff => image::ImageFormat::Tiff,
        Format::Jpeg => return decode_jpeg(bytes, limits),
    };
    let reader = image::ImageReader::with_format(Cursor::new(bytes), image_format);
    let (w, h) = reader.into_dimensions().map_err(image_err)?;
    limits.check_dimensions(u64::from(w), u64::from(h))?;
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), image_format);
    let mut il = image::Limits::default();
    il.max_image_width = Some(limits.max_dimension);
    il.max_image_height = Some(limits.max_dimension);
    // Enough for the largest accepted image at 16 bits × 4 channels, plus slack.
    il.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(1 << 20));
    reader.limits(il);
    let img = reader.decode().map_err(image_err)?;
    Ok(from_dynamic(img))
}

fn image_err(e: image::ImageError) -> Error {
    match e {
        image::ImageError::Limits(l) => Error::LimitExceeded(l.to_string()),
        image::ImageError::Unsupported(u) => Error::Unsupported(u.to_string()),
        other => Error::Decode(other.to_string()),
    }
}

/// 16 bits to 8 as ImageMagick scales a quantum to a char: round(v / 257).
fn to8(v: u16) -> u8 {
    ((u32::from(v) + 128) / 257) as u8
}

fn f32_to8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Grey stays one channel; alpha is dropped without compositing (what the
/// reference command-line hasher does); 16-bit and float samples become 8-bit.
fn from_dynamic(img: image::DynamicImage) -> Image {
    use image::DynamicImage as D;
    let (width, height) = (img.width(), img.height());
    let (channels, pixels): (u8, Vec<u8>) = match img {
        D::ImageLuma8(b) => (1, b.into_raw()),
        D::ImageLumaA8(b) => (1, b.into_raw().chunks_exact(2).map(|p| p[0]).collect()),
        D::ImageRgb8(b) => (3, b.into_raw()),
        D::ImageRgba8(b) => (
            3,
            b.into_raw()
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
        ),
        D::ImageLuma16(b) => (1, b.into_raw().into_iter().map(to8).collect()),
        D::ImageLumaA16(b) => (1, b.into_raw().chunks_exact(2).map(|p| to8(p[0])).collect()),
        D::ImageRgb16(b) => (3, b.into_raw().into_iter().map(to8).collect()),
        D::ImageRgba16(b) => (
            3,
            b.into_raw()
                .chunks_exact(4)
                .flat_map(|p| [to8(p[0]), to8(p[1]), to8(p[2])])
                .collect(),
        ),
        D::ImageRgb32F(b) => (3, b.into_raw().into_iter().map(f32_to8).collect()),
        other => (3, other.to_rgb8().into_raw()),
    };
    Image {
        width,
        height,
        channels,
        pixels,
    }
}
