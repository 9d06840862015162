//! Safe decoding of untrusted image bytes into the pixels the reference hashes.
//!
//! JPEG goes through libjpeg-turbo's decoder (as vendored in the `mozjpeg` crate,
//! compiled from C) with its default ISLOW IDCT and fancy upsampling: the pixels
//! the reference sees.
//! PNG, GIF (first frame), WebP, BMP and TIFF go through the `image` crate.
//! Every path checks the header against [`Limits`] before it allocates.

use std::cell::Cell;
use std::io::{BufRead, Cursor, Read};
use std::panic::{self, AssertUnwindSafe};

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
    /// JPEG (libjpeg-turbo's decoder).
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

/// An image's width and height from its header alone, without decoding the
/// pixels: what a caller needs to budget memory before a decode (hashing
/// costs about 11 bytes per pixel). `None` when the format is not one
/// [`decode`] reads or the header does not parse (decoding will then say why).
pub fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    match sniff(bytes)? {
        Format::Jpeg => {
            // libjpeg reads the header and stops; its fatal errors unwind (above).
            panic::catch_unwind(AssertUnwindSafe(|| {
                let d = mozjpeg::Decompress::new_mem(bytes).ok()?;
                let (w, h) = d.size();
                Some((u32::try_from(w).ok()?, u32::try_from(h).ok()?))
            }))
            .ok()
            .flatten()
        }
        _ => image::ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .ok()?
            .into_dimensions()
            .ok(),
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

// Metadata segments (EXIF, XMP, ICC, comments) are skipped without being
// parsed: a malformed one cannot refuse an image whose pixels are fine.
fn decode_jpeg(bytes: &[u8], limits: &Limits) -> Result<Image, Error> {
    // libjpeg reports fatal errors by unwinding out of the C code (the mozjpeg
    // crate's error manager resumes an unwind without running the panic hook):
    // catch it here and turn it into an error.
    let hit_end = Cell::new(false);
    let reader = WatchEnd {
        rest: bytes,
        hit_end: &hit_end,
    };
    let decoded = panic::catch_unwind(AssertUnwindSafe(|| decode_jpeg_unwinding(reader, limits)))
        .unwrap_or_else(|payload| {
        Err(Error::Decode(format!("JPEG: {}", panic_text(&*payload))))
    })?;
    if hit_end.get() {
        // libjpeg asked for bytes past the end and, as its warning says, went
        // on with grey: refuse, as libjpeg-turbo's TurboJPEG API does.
        return Err(Error::Decode(
            "JPEG: premature end of data (the file is truncated)".into(),
        ));
    }
    Ok(decoded)
}

fn decode_jpeg_unwinding(reader: WatchEnd<'_>, limits: &Limits) -> Result<Image, Error> {
    let io_err = |e: std::io::Error| Error::Decode(format!("JPEG: {e}"));
    let d = mozjpeg::Decompress::new_reader(reader).map_err(io_err)?;
    let (w, h) = d.size();
    limits.check_dimensions(w as u64, h as u64)?;
    // Grey stays grey, CMYK and YCCK come out as (Adobe-inverted) CMYK,
    // everything else as RGB: what the TurboJPEG API chose before.
    let (channels, pixels) = match d.image().map_err(io_err)? {
        mozjpeg::Format::Gray(mut s) => {
            let px = s.read_scanlines::<u8>().map_err(io_err)?;
            s.finish().map_err(io_err)?;
            (1, px)
        }
        mozjpeg::Format::CMYK(mut s) => {
            let px = s.read_scanlines::<u8>().map_err(io_err)?;
            s.finish().map_err(io_err)?;
            (3, cmyk_to_rgb(&px))
        }
        mozjpeg::Format::RGB(mut s) => {
            let px = s.read_scanlines::<u8>().map_err(io_err)?;
            s.finish().map_err(io_err)?;
            (3, px)
        }
    };
    if pixels.len() != w * h * usize::from(channels) {
        return Err(Error::Decode(
            "JPEG: fewer scanlines than the header says".into(),
        ));
    }
    Ok(Image {
        width: w as u32,
        height: h as u32,
        channels,
        pixels,
    })
}

/// The bytes of a JPEG as libjpeg reads them, noting whether it asked for
/// more after the last one (a truncated file: libjpeg warns and pads).
struct WatchEnd<'a> {
    rest: &'a [u8],
    hit_end: &'a Cell<bool>,
}

impl Read for WatchEnd<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.fill_buf()?.read(buf)?;
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for WatchEnd<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.rest.is_empty() {
            self.hit_end.set(true);
        }
        Ok(self.rest)
    }

    fn consume(&mut self, amt: usize) {
        self.rest = &self.rest[amt.min(self.rest.len())..];
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.trim_start_matches("libjpeg fatal error: ").to_string()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "the decoder failed".to_string()
    }
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
/// (1–100) with libjpeg's classic settings (as libjpeg-turbo encodes; none of
/// mozjpeg's trellis or progressive extras): for benchmarks and for
/// re-encoding transforms in the detection-quality harness.
pub fn encode_jpeg(img: &Image, quality: u8) -> Result<Vec<u8>, Error> {
    let channels = usize::from(img.channels);
    let color_space = match img.channels {
        1 => mozjpeg::ColorSpace::JCS_GRAYSCALE,
        3 => mozjpeg::ColorSpace::JCS_RGB,
        n => {
            return Err(Error::Unsupported(format!(
                "JPEG encoding: {n} channels (1 or 3 expected)"
            )));
        }
    };
    let (w, h) = (img.width as usize, img.height as usize);
    if w == 0 || h == 0 || img.pixels.len() != w * h * channels {
        return Err(Error::Unsupported(format!(
            "JPEG encoding: {} bytes do not make a {w}×{h}×{channels} image",
            img.pixels.len()
        )));
    }
    let err = |e: std::io::Error| Error::Unsupported(format!("JPEG encoding: {e}"));
    panic::catch_unwind(AssertUnwindSafe(|| {
        let mut c = mozjpeg::Compress::new(color_space);
        c.set_fastest_defaults();
        c.set_size(w, h);
        c.set_quality(f32::from(quality.clamp(1, 100)));
        if channels == 3 {
            c.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
        }
        let mut started = c.start_compress(Vec::new()).map_err(err)?;
        started.write_scanlines(&img.pixels).map_err(err)?;
        started.finish().map_err(err)
    }))
    .unwrap_or_else(|payload| {
        Err(Error::Unsupported(format!(
            "JPEG encoding: {}",
            panic_text(&*payload)
        )))
    })
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
