//! The native half of the `bulwark` Python package (`bulwark._bulwark`).
//!
//! Thin wrappers over the workspace crates: PDQ (`bulwark-pdq`), vPDQ
//! (`bulwark-vpdq`), the exact index (`bulwark-index`), list formats
//! (`bulwark-banks`), the device side of safety vouchers and franking
//! (`bulwark-client`). Hashing and searching run with the GIL released;
//! batches run on rayon's pool (every core). Errors are Python exceptions
//! carrying the Rust error's message. The Python package (python/bulwark)
//! adds NumPy/PIL conversion, typed results and the HTTP client; the types
//! are in python/bulwark/_bulwark.pyi.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rayon::prelude::*;

use bulwark_banks::{Format as ListFormat, Record, SignalType};
use bulwark_index::{Code, Index as RawIndex, LiveIndex};
use bulwark_pdq::{Image, Limits, Mode, PdqHash};

create_exception!(
    _bulwark,
    BulwarkError,
    PyException,
    "Base of every Bulwark error."
);
create_exception!(
    _bulwark,
    ImageError,
    BulwarkError,
    "An image could not be decoded or is over the limits."
);
create_exception!(
    _bulwark,
    VideoError,
    BulwarkError,
    "A video could not be hashed (ffmpeg missing, not a video, over the limits)."
);
create_exception!(
    _bulwark,
    IndexFileError,
    BulwarkError,
    "An index file could not be read or written, or is damaged."
);
create_exception!(
    _bulwark,
    ListFormatError,
    BulwarkError,
    "A hash list line or record is malformed."
);
create_exception!(
    _bulwark,
    VoucherError,
    BulwarkError,
    "Pdata did not verify or a voucher could not be made."
);
create_exception!(
    _bulwark,
    FrankingError,
    BulwarkError,
    "A franked message did not verify."
);

fn image_err(e: bulwark_pdq::Error) -> PyErr {
    ImageError::new_err(e.to_string())
}

fn mode_of(mode: &str) -> PyResult<Mode> {
    mode.parse::<Mode>().map_err(PyValueError::new_err)
}

fn limits_of(
    max_bytes: Option<u64>,
    max_pixels: Option<u64>,
    max_dimension: Option<u32>,
) -> Limits {
    let d = Limits::default();
    match (max_bytes, max_pixels, max_dimension) {
        (None, None, None) => d,
        _ => Limits::new(
            max_bytes.unwrap_or(d.max_bytes),
            max_pixels.unwrap_or(d.max_pixels),
            max_dimension.unwrap_or(d.max_dimension),
        ),
    }
}

/// A 256-bit code given as 64 hex digits or 32 raw bytes.
#[derive(FromPyObject)]
enum HashArg {
    Hex(String),
    Raw(Vec<u8>),
}

impl HashArg {
    fn code(&self) -> PyResult<Code> {
        match self {
            HashArg::Hex(s) => s
                .parse::<PdqHash>()
                .map(|h| *h.as_bytes())
                .map_err(|e| PyValueError::new_err(e.to_string())),
            HashArg::Raw(b) => b
                .as_slice()
                .try_into()
                .map_err(|_| PyValueError::new_err(format!("a hash is 32 bytes, got {}", b.len()))),
        }
    }
}

fn hex_of(h: &PdqHash) -> String {
    h.to_string()
}

/// Pixels handed over from Python (NumPy, PIL): checked, then an [`Image`].
fn image_of(pixels: &[u8], width: usize, height: usize, channels: u8) -> PyResult<Image> {
    if channels != 1 && channels != 3 {
        return Err(PyValueError::new_err(format!(
            "channels must be 1 (grey) or 3 (RGB), got {channels}"
        )));
    }
    let want = width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(usize::from(channels)))
        .ok_or_else(|| PyValueError::new_err("image dimensions overflow"))?;
    if pixels.len() != want {
        return Err(PyValueError::new_err(format!(
            "{width}x{height}x{channels} pixels need {want} bytes, got {}",
            pixels.len()
        )));
    }
    let (w, h) = (
        u32::try_from(width).map_err(|_| PyValueError::new_err("width too large"))?,
        u32::try_from(height).map_err(|_| PyValueError::new_err("height too large"))?,
    );
    Ok(Image {
        width: w,
        height: h,
        channels,
        pixels: pixels.to_vec(),
    })
}

// ---------------------------------------------------------------- PDQ

/// PDQ hash and quality of encoded image bytes.
#[pyfunction]
#[pyo3(signature = (data, mode = "full", max_bytes = None, max_pixels = None, max_dimension = None))]
fn hash_bytes(
    py: Python<'_>,
    data: &[u8],
    mode: &str,
    max_bytes: Option<u64>,
    max_pixels: Option<u64>,
    max_dimension: Option<u32>,
) -> PyResult<(String, u32)> {
    let mode = mode_of(mode)?;
    let limits = limits_of(max_bytes, max_pixels, max_dimension);
    let h = py
        .detach(|| bulwark_pdq::hash_bytes(data, mode, &limits))
        .map_err(image_err)?;
    Ok((hex_of(&h.hash), h.quality))
}

/// The eight dihedral hashes and quality of encoded image bytes.
#[pyfunction]
#[pyo3(signature = (data, mode = "full"))]
fn hash_bytes_dihedral(py: Python<'_>, data: &[u8], mode: &str) -> PyResult<(Vec<String>, u32)> {
    let mode = mode_of(mode)?;
    let h = py
        .detach(|| bulwark_pdq::hash_bytes_dihedral(data, mode, &Limits::default()))
        .map_err(image_err)?;
    Ok((h.hashes.iter().map(hex_of).collect(), h.quality))
}

/// PDQ hash of raw pixels (row-major, 1 or 3 channels).
#[pyfunction]
#[pyo3(signature = (pixels, width, height, channels, mode = "full"))]
fn hash_pixels(
    py: Python<'_>,
    pixels: &[u8],
    width: usize,
    height: usize,
    channels: u8,
    mode: &str,
) -> PyResult<(String, u32)> {
    let mode = mode_of(mode)?;
    let img = image_of(pixels, width, height, channels)?;
    let h = py.detach(|| bulwark_pdq::hash_image(&img, mode));
    Ok((hex_of(&h.hash), h.quality))
}

/// The eight dihedral hashes of raw pixels.
#[pyfunction]
#[pyo3(signature = (pixels, width, height, channels, mode = "full"))]
fn hash_pixels_dihedral(
    py: Python<'_>,
    pixels: &[u8],
    width: usize,
    height: usize,
    channels: u8,
    mode: &str,
) -> PyResult<(Vec<String>, u32)> {
    let mode = mode_of(mode)?;
    let img = image_of(pixels, width, height, channels)?;
    let h = py.detach(|| bulwark_pdq::hash_image_dihedral(&img, mode));
    Ok((h.hashes.iter().map(hex_of).collect(), h.quality))
}

type BatchItem = Result<(String, u32), String>;

fn batch_out(py: Python<'_>, items: Vec<BatchItem>) -> PyResult<Vec<Py<PyAny>>> {
    items
        .into_iter()
        .map(|r| match r {
            Ok(t) => Ok(t.into_pyobject(py)?.into_any().unbind()),
            Err(msg) => Ok(ImageError::new_err(msg).into_value(py).into_any()),
        })
        .collect()
}

/// Hashes many files on every core; each item is `(hash, quality)` or an
/// `ImageError` instance (returned, not raised).
#[pyfunction]
#[pyo3(signature = (paths, mode = "full"))]
fn hash_files(py: Python<'_>, paths: Vec<PathBuf>, mode: &str) -> PyResult<Vec<Py<PyAny>>> {
    let mode = mode_of(mode)?;
    let items: Vec<BatchItem> = py.detach(|| {
        paths
            .par_iter()
            .map(|p| {
                let data = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
                bulwark_pdq::hash_bytes(&data, mode, &Limits::default())
                    .map(|h| (hex_of(&h.hash), h.quality))
                    .map_err(|e| format!("{}: {e}", p.display()))
            })
            .collect()
    });
    batch_out(py, items)
}

/// Hashes many encoded images on every core; items as for `hash_files`.
#[pyfunction]
#[pyo3(signature = (images, mode = "full"))]
fn hash_bytes_many(py: Python<'_>, images: Vec<Vec<u8>>, mode: &str) -> PyResult<Vec<Py<PyAny>>> {
    let mode = mode_of(mode)?;
    let items: Vec<BatchItem> = py.detach(|| {
        images
            .par_iter()
            .map(|d| {
                bulwark_pdq::hash_bytes(d, mode, &Limits::default())
                    .map(|h| (hex_of(&h.hash), h.quality))
                    .map_err(|e| e.to_string())
            })
            .collect()
    });
    batch_out(py, items)
}

/// Hashes a stack of same-sized frames (`n*h*w*c` bytes) on every core.
#[pyfunction]
#[pyo3(signature = (pixels, count, width, height, channels, mode = "full"))]
fn hash_pixels_many(
    py: Python<'_>,
    pixels: &[u8],
    count: usize,
    width: usize,
    height: usize,
    channels: u8,
    mode: &str,
) -> PyResult<Vec<(String, u32)>> {
    let mode = mode_of(mode)?;
    let one = width * height * usize::from(channels);
    if count.checked_mul(one) != Some(pixels.len()) {
        return Err(PyValueError::new_err(format!(
            "{count} images of {width}x{height}x{channels} need {} bytes, got {}",
            count.saturating_mul(one),
            pixels.len()
        )));
    }
    image_of(&pixels[..one.min(pixels.len())], width, height, channels)?;
    Ok(py.detach(|| {
        pixels
            .par_chunks(one.max(1))
            .take(count)
            .map(|px| {
                let img = Image {
                    width: width as u32,
                    height: height as u32,
                    channels,
                    pixels: px.to_vec(),
                };
                let h = bulwark_pdq::hash_image(&img, mode);
                (hex_of(&h.hash), h.quality)
            })
            .collect()
    }))
}

/// Hamming distance between two hashes (hex or 32 bytes).
#[pyfunction]
fn distance(a: HashArg, b: HashArg) -> PyResult<u32> {
    let (a, b) = (a.code()?, b.code()?);
    Ok(PdqHash::from_bytes(a).distance(&PdqHash::from_bytes(b)))
}

/// Normalises a hash to lower-case hex (validating it).
#[pyfunction]
fn parse_hash(h: HashArg) -> PyResult<String> {
    Ok(hex_of(&PdqHash::from_bytes(h.code()?)))
}

// ---------------------------------------------------------------- vPDQ

type FrameTuple = (u64, u32, String, f64);

fn frames_of(v: Vec<FrameTuple>) -> PyResult<Vec<bulwark_vpdq::FrameHash>> {
    v.into_iter()
        .map(|(frame, quality, hash, timestamp)| {
            Ok(bulwark_vpdq::FrameHash {
                frame,
                quality,
                hash: hash.parse().map_err(|e: bulwark_pdq::ParseHashError| {
                    PyValueError::new_err(e.to_string())
                })?,
                timestamp,
            })
        })
        .collect()
}

fn tuples_of(v: &[bulwark_vpdq::FrameHash]) -> Vec<FrameTuple> {
    v.iter()
        .map(|f| (f.frame, f.quality, hex_of(&f.hash), f.timestamp))
        .collect()
}

/// vPDQ: every frame's (or one frame every `every_seconds`) PDQ hash,
/// decoded by the `ffmpeg` command line.
#[pyfunction]
#[pyo3(signature = (path, every_seconds = None, size = None, ffmpeg = None, ffprobe = None, timeout_seconds = None))]
fn hash_video(
    py: Python<'_>,
    path: PathBuf,
    every_seconds: Option<f64>,
    size: Option<u32>,
    ffmpeg: Option<PathBuf>,
    ffprobe: Option<PathBuf>,
    timeout_seconds: Option<f64>,
) -> PyResult<Vec<FrameTuple>> {
    let mut opts = bulwark_vpdq::Options::default();
    if let Some(s) = every_seconds
        && !(s.is_finite() && s > 0.0)
    {
        return Err(PyValueError::new_err(
            "every_seconds must be a positive number",
        ));
    }
    opts.every_seconds = every_seconds;
    opts.size = size;
    if let Some(f) = ffmpeg {
        opts.ffmpeg = f;
    }
    if let Some(f) = ffprobe {
        opts.ffprobe = f;
    }
    if let Some(t) = timeout_seconds {
        opts.timeout = Duration::try_from_secs_f64(t)
            .map_err(|_| PyValueError::new_err("timeout_seconds must be a non-negative number"))?;
    }
    let frames = py
        .detach(|| bulwark_vpdq::hash_video(&path, &opts))
        .map_err(|e| VideoError::new_err(e.to_string()))?;
    Ok(tuples_of(&frames))
}

/// Parses `frame,quality,hash,timestamp` lines (the reference's file format).
#[pyfunction]
fn parse_vpdq(text: &str) -> PyResult<Vec<FrameTuple>> {
    let frames = bulwark_vpdq::parse_lines(text).map_err(|e| VideoError::new_err(e.to_string()))?;
    Ok(tuples_of(&frames))
}

/// The vPDQ match rule: `(query_percent, compared_percent, is_match)`.
#[pyfunction]
#[pyo3(signature = (query, compared, distance = 31, quality = 50, query_percent = 80.0, compared_percent = 0.0))]
fn match_videos(
    py: Python<'_>,
    query: Vec<FrameTuple>,
    compared: Vec<FrameTuple>,
    distance: u32,
    quality: u32,
    query_percent: f64,
    compared_percent: f64,
) -> PyResult<(f64, f64, bool)> {
    let (q, c) = (frames_of(query)?, frames_of(compared)?);
    let rule = bulwark_vpdq::MatchRule {
        distance,
        quality,
        query_percent,
        compared_percent,
    };
    let r = py.detach(|| bulwark_vpdq::match_videos(&q, &c, &rule));
    Ok((r.query_percent, r.compared_percent, r.is_match))
}

// ---------------------------------------------------------------- index

fn index_err(e: bulwark_index::Error) -> PyErr {
    IndexFileError::new_err(e.to_string())
}

fn entries_of(ids: &[u8], codes: &[u8]) -> PyResult<Vec<(u64, Code)>> {
    if !ids.len().is_multiple_of(8)
        || !codes.len().is_multiple_of(32)
        || ids.len() / 8 != codes.len() / 32
    {
        return Err(PyValueError::new_err(format!(
            "ids ({} bytes) must be n little-endian u64 and codes ({} bytes) n rows of 32 bytes",
            ids.len(),
            codes.len()
        )));
    }
    Ok(ids
        .chunks_exact(8)
        .zip(codes.chunks_exact(32))
        .map(|(i, c)| {
            let mut id = [0u8; 8];
            id.copy_from_slice(i);
            let mut code = [0u8; 32];
            code.copy_from_slice(c);
            (u64::from_le_bytes(id), code)
        })
        .collect())
}

fn codes_of(codes: &[u8]) -> PyResult<Vec<Code>> {
    if !codes.len().is_multiple_of(32) {
        return Err(PyValueError::new_err(format!(
            "queries must be rows of 32 bytes, got {} bytes",
            codes.len()
        )));
    }
    Ok(codes
        .chunks_exact(32)
        .map(|c| {
            let mut code = [0u8; 32];
            code.copy_from_slice(c);
            code
        })
        .collect())
}

fn check_radius(radius: u32) -> PyResult<()> {
    if radius > 256 {
        return Err(PyValueError::new_err(format!(
            "radius {radius} is over 256, the number of bits"
        )));
    }
    Ok(())
}

/// The exact Hamming-radius index (multi-index hashing), changeable in
/// place: adds land in a scanned segment, removals are tombstones.
#[pyclass(module = "bulwark._bulwark", name = "NativeIndex")]
struct NativeIndex {
    live: LiveIndex,
}

#[pymethods]
impl NativeIndex {
    #[new]
    fn new() -> Self {
        NativeIndex {
            live: LiveIndex::new(),
        }
    }

    /// Builds from `n` little-endian u64 ids and `n*32` code bytes.
    #[staticmethod]
    fn build(py: Python<'_>, ids: &[u8], codes: &[u8]) -> PyResult<Self> {
        let entries = entries_of(ids, codes)?;
        let ix = py.detach(|| RawIndex::build(&entries));
        Ok(NativeIndex {
            live: LiveIndex::from_index(ix),
        })
    }

    /// Opens an index file by memory map (validated).
    #[staticmethod]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let ix = py.detach(|| RawIndex::open(&path)).map_err(index_err)?;
        Ok(NativeIndex {
            live: LiveIndex::from_index(ix),
        })
    }

    /// Loads an index from the bytes of its file format.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        let ix = RawIndex::from_bytes(data).map_err(index_err)?;
        Ok(NativeIndex {
            live: LiveIndex::from_index(ix),
        })
    }

    /// Folds pending changes in and writes the index file (atomically).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| self.live.snapshot().save(&path))
            .map_err(index_err)
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let b = py.detach(|| self.live.snapshot().to_bytes());
        PyBytes::new(py, &b)
    }

    fn add(&self, id: u64, code: HashArg) -> PyResult<()> {
        self.live.insert(id, code.code()?);
        Ok(())
    }

    fn add_many(&self, py: Python<'_>, ids: &[u8], codes: &[u8]) -> PyResult<()> {
        let entries = entries_of(ids, codes)?;
        py.detach(|| {
            for (id, c) in entries {
                self.live.insert(id, c);
            }
        });
        Ok(())
    }

    fn remove(&self, id: u64) -> bool {
        self.live.remove(id)
    }

    fn search(&self, py: Python<'_>, query: HashArg, radius: u32) -> PyResult<Vec<(u64, u32)>> {
        check_radius(radius)?;
        let q = query.code()?;
        let mut hits = py.detach(|| self.live.search(&q, radius));
        hits.sort_unstable_by_key(|m| (m.distance, m.id));
        Ok(hits.into_iter().map(|m| (m.id, m.distance)).collect())
    }

    /// Searches `n*32` query bytes on every core.
    fn search_many(
        &self,
        py: Python<'_>,
        queries: &[u8],
        radius: u32,
    ) -> PyResult<Vec<Vec<(u64, u32)>>> {
        check_radius(radius)?;
        let qs = codes_of(queries)?;
        Ok(py.detach(|| {
            qs.par_chunks(64)
                .flat_map_iter(|chunk| self.live.search_batch(chunk, radius))
                .map(|mut hits| {
                    hits.sort_unstable_by_key(|m| (m.distance, m.id));
                    hits.into_iter().map(|m| (m.id, m.distance)).collect()
                })
                .collect()
        }))
    }

    /// Folds pending adds and removals into the base now.
    fn merge(&self, py: Python<'_>) {
        py.detach(|| self.live.merge());
    }

    fn __len__(&self) -> usize {
        self.live.len()
    }
}

/// Brute-force search (every code compared), for checks and small lists.
#[pyfunction]
fn brute_force(
    py: Python<'_>,
    ids: &[u8],
    codes: &[u8],
    query: HashArg,
    radius: u32,
) -> PyResult<Vec<(u64, u32)>> {
    let entries = entries_of(ids, codes)?;
    let q = query.code()?;
    let mut hits = py.detach(|| bulwark_index::brute_force(&entries, &q, radius));
    hits.sort_unstable_by_key(|m| (m.distance, m.id));
    Ok(hits.into_iter().map(|m| (m.id, m.distance)).collect())
}

// ---------------------------------------------------------------- lists

/// `(signal_type, value, quality, note, metadata_json)`.
type RecordTuple = (String, String, Option<u32>, Option<String>, Option<String>);

fn list_format(name: &str) -> PyResult<ListFormat> {
    name.parse::<ListFormat>().map_err(PyValueError::new_err)
}

/// Parses a hash list; blank lines, comments and headers are skipped. A bad
/// line raises `ListFormatError` naming its line number.
#[pyfunction]
fn read_list(text: &str, format: &str) -> PyResult<Vec<RecordTuple>> {
    let f = list_format(format)?;
    let mut out = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        match f.parse_line(line) {
            Ok(None) => {}
            Ok(Some(r)) => out.push((
                r.signal.signal_type().name().to_string(),
                r.signal.value(),
                r.quality,
                r.note,
                r.metadata.map(|m| m.to_string()),
            )),
            Err(e) => return Err(ListFormatError::new_err(format!("line {}: {e}", i + 1))),
        }
    }
    Ok(out)
}

/// Writes records in a list format (with the format's header line, if any).
#[pyfunction]
fn write_list(records: Vec<RecordTuple>, format: &str) -> PyResult<String> {
    let f = list_format(format)?;
    let mut out: Vec<u8> = Vec::new();
    if let Some(h) = f.header() {
        out.extend_from_slice(h.as_bytes());
        out.push(b'\n');
    }
    for (i, (ty, value, quality, note, metadata)) in records.into_iter().enumerate() {
        let bad = |e: String| ListFormatError::new_err(format!("record {i}: {e}"));
        let ty: SignalType = ty.parse().map_err(|e| bad(format!("{e}")))?;
        let signal = ty.parse(&value).map_err(|e| bad(e.to_string()))?;
        if quality.is_some_and(|q| q > 100) {
            return Err(bad("quality is out of range 0..=100".into()));
        }
        let metadata = match metadata {
            None => None,
            Some(m) => {
                let v: serde_json::Value = serde_json::from_str(&m)
                    .map_err(|e| bad(format!("metadata is not JSON: {e}")))?;
                if !v.is_object() {
                    return Err(bad("metadata must be a JSON object".into()));
                }
                Some(v)
            }
        };
        let r = Record {
            signal,
            quality,
            note,
            metadata,
        };
        f.write_record(&r, &mut out)
            .map_err(|e| bad(e.to_string()))?;
    }
    String::from_utf8(out).map_err(|e| ListFormatError::new_err(e.to_string()))
}

// ---------------------------------------------------------------- vouchers

fn voucher_err(e: impl std::fmt::Display) -> PyErr {
    VoucherError::new_err(e.to_string())
}

/// Published matching tables, verified against their root.
#[pyclass(module = "bulwark._bulwark", name = "Pdata", frozen)]
struct PyPdata {
    inner: bulwark_client::voucher::Pdata,
}

#[pymethods]
impl PyPdata {
    /// What a device does: checks the signed root, at least two (or the
    /// policy's minimum) distinct pinned provider signatures over it, and
    /// that the parameters are an allowed profile.
    #[staticmethod]
    #[pyo3(signature = (data, signed_root, providers, threshold = None))]
    fn load_signed(
        py: Python<'_>,
        data: &[u8],
        signed_root: &[u8],
        providers: Vec<String>,
        threshold: Option<u16>,
    ) -> PyResult<Self> {
        let keys = providers
            .iter()
            .map(|p| {
                p.parse::<bulwark_client::voucher::ProviderPublic>()
                    .map_err(|e| PyValueError::new_err(format!("provider key {p:?}: {e}")))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let mut policy = bulwark_client::voucher::Policy::default().pin(keys);
        if let Some(t) = threshold {
            policy = policy.allow_threshold(t);
        }
        let inner = py
            .detach(|| bulwark_client::voucher::load_signed_pdata(data, signed_root, &policy))
            .map_err(voucher_err)?;
        Ok(PyPdata { inner })
    }

    /// Checks pdata against a root obtained out of band (64 hex digits),
    /// without provider signatures: for tests and services that publish no
    /// signed roots yet. Devices use `load_signed`.
    #[staticmethod]
    #[pyo3(signature = (data, root, threshold = None))]
    fn load_unsigned(
        py: Python<'_>,
        data: &[u8],
        root: &str,
        threshold: Option<u16>,
    ) -> PyResult<Self> {
        let mut policy = bulwark_client::voucher::Policy::default();
        if let Some(t) = threshold {
            policy = policy.allow_threshold(t);
        }
        let inner = py
            .detach(|| bulwark_client::voucher::load_pdata_with_policy(data, root, &policy))
            .map_err(voucher_err)?;
        Ok(PyPdata { inner })
    }

    /// The Merkle root the tables hash to (hex).
    #[getter]
    fn root(&self) -> String {
        hex::encode(self.inner.root().0)
    }

    /// How many bank entries the tables hold (real and padding).
    #[getter]
    fn bank_entries(&self) -> u64 {
        self.inner.bank_entries()
    }

    /// Size of the pdata, bytes.
    fn __len__(&self) -> usize {
        self.inner.byte_len()
    }
}

/// A device's secret voucher account (keep `to_bytes()` secret).
#[pyclass(module = "bulwark._bulwark", name = "DeviceAccount", frozen)]
struct PyDeviceAccount {
    inner: bulwark_client::voucher::DeviceAccount,
}

#[pymethods]
impl PyDeviceAccount {
    #[staticmethod]
    fn generate() -> Self {
        PyDeviceAccount {
            inner: bulwark_client::voucher::DeviceAccount::generate(&mut rand::rngs::OsRng),
        }
    }

    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        Ok(PyDeviceAccount {
            inner: bulwark_client::voucher::DeviceAccount::from_bytes(data).map_err(voucher_err)?,
        })
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }
}

/// What a device sent in an epoch: copies of an earlier image count once.
#[pyclass(module = "bulwark._bulwark", name = "SeenImages")]
struct PySeenImages {
    inner: bulwark_client::voucher::SeenImages,
}

#[pymethods]
impl PySeenImages {
    #[new]
    fn new() -> Self {
        PySeenImages {
            inner: bulwark_client::voucher::SeenImages::new(),
        }
    }

    /// `(epoch, hashes)` to persist on the device.
    fn remembered(&self) -> (Option<u64>, Vec<String>) {
        let (e, hs) = self.inner.remembered();
        (e, hs.iter().map(hex_of).collect())
    }

    #[staticmethod]
    fn restore(epoch: Option<u64>, hashes: Vec<HashArg>) -> PyResult<Self> {
        let hs = hashes
            .iter()
            .map(|h| h.code().map(PdqHash::from_bytes))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PySeenImages {
            inner: bulwark_client::voucher::SeenImages::restore(epoch, hs),
        })
    }
}

/// Hashes an image (PDQ, full resolution) and builds its safety voucher:
/// the bytes to send with the image to `POST /v1/vouchers`.
#[pyfunction]
#[pyo3(signature = (pdata, account, image, seen = None))]
fn make_voucher<'py>(
    py: Python<'py>,
    pdata: &PyPdata,
    account: &PyDeviceAccount,
    image: &[u8],
    seen: Option<&mut PySeenImages>,
) -> PyResult<Bound<'py, PyBytes>> {
    let v = match seen {
        Some(s) => py.detach(|| {
            bulwark_client::voucher::voucher_for_image_seen(
                &pdata.inner,
                &account.inner,
                &mut s.inner,
                image,
            )
        }),
        None => py.detach(|| {
            bulwark_client::voucher::voucher_for_image(&pdata.inner, &account.inner, image)
        }),
    }
    .map_err(voucher_err)?;
    Ok(PyBytes::new(py, &v.to_bytes()))
}

/// The enrolled device's Ed25519 signature over a voucher (64 bytes), as
/// `POST /v1/vouchers` wants it.
#[pyfunction]
fn sign_voucher<'py>(
    py: Python<'py>,
    account: &str,
    device: &str,
    voucher: &[u8],
    secret_key: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    use ed25519_dalek::Signer;
    let k = ed25519_dalek::SigningKey::from_bytes(&array32(secret_key, "device signing key")?);
    let input = bulwark_psi::envelope::signing_input(account, device, voucher);
    Ok(PyBytes::new(py, &k.sign(&input).to_bytes()))
}

// ---------------------------------------------------------------- franking

use bulwark_client::franking as fr;
use bulwark_franking::attachment as fr_att;

fn franking_err(e: impl std::fmt::Display) -> PyErr {
    FrankingError::new_err(e.to_string())
}

fn array32(b: &[u8], what: &str) -> PyResult<[u8; 32]> {
    b.try_into()
        .map_err(|_| PyValueError::new_err(format!("{what} must be 32 bytes, got {}", b.len())))
}

/// An attachment reference as a franked message carries it: blob id, key,
/// key commitment, SHA-256 of the ciphertext, plaintext size, media type
/// (`bulwark_franking::attachment::AttachmentRef`).
#[pyclass(
    module = "bulwark._bulwark",
    name = "AttachmentRef",
    frozen,
    from_py_object
)]
#[derive(Clone)]
struct PyAttachmentRef {
    inner: fr_att::AttachmentRef,
}

#[pymethods]
impl PyAttachmentRef {
    /// A reference from its fields (as a device stored them); checked
    /// against the content limits.
    #[new]
    #[pyo3(signature = (blob_id, key, commitment, ciphertext_sha256, size, media_type))]
    fn new(
        blob_id: String,
        key: &[u8],
        commitment: &[u8],
        ciphertext_sha256: &[u8],
        size: u64,
        media_type: String,
    ) -> PyResult<Self> {
        let r = PyAttachmentRef {
            inner: fr_att::AttachmentRef {
                blob_id,
                key: fr_att::AttachmentKey(array32(key, "attachment key")?),
                commitment: fr_att::Commitment(array32(commitment, "attachment commitment")?),
                ciphertext_sha256: array32(ciphertext_sha256, "ciphertext SHA-256")?,
                size,
                media_type,
            },
        };
        check_refs(std::slice::from_ref(&r.inner))?;
        Ok(r)
    }
    #[getter]
    fn blob_id(&self) -> String {
        self.inner.blob_id.clone()
    }
    /// The attachment's secret key (32 bytes): keep it as secret as the message.
    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.key.0)
    }
    #[getter]
    fn commitment<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.commitment.0)
    }
    #[getter]
    fn ciphertext_sha256<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.ciphertext_sha256)
    }
    #[getter]
    fn size(&self) -> u64 {
        self.inner.size
    }
    #[getter]
    fn media_type(&self) -> String {
        self.inner.media_type.clone()
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyAttachmentRef>()
            .is_ok_and(|o| refs_content(&self.inner).references(&o.get().inner))
    }
    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.ciphertext_sha256.hash(&mut h);
        self.inner.blob_id.hash(&mut h);
        h.finish()
    }
    /// Never shows the key.
    fn __repr__(&self) -> String {
        format!(
            "AttachmentRef(blob_id={:?}, media_type={:?}, size={}, ciphertext_sha256='{}')",
            self.inner.blob_id,
            self.inner.media_type,
            self.inner.size,
            hex::encode(self.inner.ciphertext_sha256)
        )
    }
}

/// A content holding only this reference: `Content::references` compares
/// field by field, the key in constant time.
fn refs_content(r: &fr_att::AttachmentRef) -> fr::Content {
    fr::Content {
        body: Vec::new(),
        attachments: vec![r.clone()],
    }
}

/// The content limits on attachment references (`Content::check`'s message).
fn check_refs(refs: &[fr_att::AttachmentRef]) -> PyResult<()> {
    fr::Content {
        body: Vec::new(),
        attachments: refs.to_vec(),
    }
    .check()
    .map_err(franking_err)
}

/// Sender: encrypts an attachment under a fresh key with a key commitment.
/// Returns `(reference, ciphertext)`: upload the ciphertext as `blob_id`,
/// put the reference in the message (`frank(..., attachments=[ref])`).
#[pyfunction]
fn seal_attachment<'py>(
    py: Python<'py>,
    plaintext: &[u8],
    media_type: String,
    blob_id: String,
) -> PyResult<(PyAttachmentRef, Bound<'py, PyBytes>)> {
    // The limits first (on a placeholder reference), so bad names cost no encryption.
    check_refs(&[fr_att::AttachmentRef {
        blob_id: blob_id.clone(),
        key: fr_att::AttachmentKey([0; 32]),
        commitment: fr_att::Commitment([0; 32]),
        ciphertext_sha256: [0; 32],
        size: 0,
        media_type: media_type.clone(),
    }])?;
    let (r, ct) =
        py.detach(|| fr_att::seal(plaintext, &media_type, &blob_id, &mut rand::rngs::OsRng));
    Ok((PyAttachmentRef { inner: r }, PyBytes::new(py, &ct)))
}

/// Receiver: checks the ciphertext's SHA-256, then the key against the
/// commitment, then decrypts. Raises `FrankingError` otherwise.
#[pyfunction]
fn open_attachment<'py>(
    py: Python<'py>,
    reference: &PyAttachmentRef,
    ciphertext: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let plain = py
        .detach(|| fr_att::open(&reference.inner, ciphertext))
        .map_err(franking_err)?;
    Ok(PyBytes::new(py, &plain))
}

/// Sender: franks a body and the attachment references sent as (sender,
/// conversation, message_id). Returns `(plaintext, tag)`: encrypt
/// `plaintext`; put `tag` in the message's authenticated data.
#[pyfunction]
#[pyo3(signature = (sender, conversation, message_id, body, attachments = Vec::new()))]
fn frank<'py>(
    py: Python<'py>,
    sender: &str,
    conversation: &str,
    message_id: &str,
    body: &[u8],
    attachments: Vec<PyAttachmentRef>,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let content = fr::Content {
        body: body.to_vec(),
        attachments: attachments.into_iter().map(|a| a.inner).collect(),
    };
    content.check().map_err(franking_err)?;
    let info = fr::MessageInfo::new(sender, conversation, message_id);
    let f = fr::frank(&info, &content);
    Ok((PyBytes::new(py, &f.plaintext), PyBytes::new(py, &f.tag.0)))
}

/// A received message whose tag and stamp signature verified.
#[pyclass(module = "bulwark._bulwark", name = "Received", frozen)]
struct PyReceived {
    inner: fr::Received,
}

#[pymethods]
impl PyReceived {
    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.content().body)
    }
    #[getter]
    fn sender(&self) -> String {
        self.inner.context().info.sender.clone()
    }
    #[getter]
    fn conversation(&self) -> String {
        self.inner.context().info.conversation.clone()
    }
    #[getter]
    fn message_id(&self) -> String {
        self.inner.context().info.message_id.clone()
    }
    #[getter]
    fn epoch(&self) -> u64 {
        self.inner.context().epoch
    }
    #[getter]
    fn recipients(&self) -> Vec<String> {
        self.inner.context().recipients.clone()
    }
    #[getter]
    fn accepted_at(&self) -> u64 {
        self.inner.context().accepted_at
    }
    #[getter]
    fn stamper(&self) -> String {
        self.inner.context().stamper.clone()
    }
    /// The attachment references the sender franked, in order.
    #[getter]
    fn attachments(&self) -> Vec<PyAttachmentRef> {
        self.inner
            .content()
            .attachments
            .iter()
            .map(|a| PyAttachmentRef { inner: a.clone() })
            .collect()
    }
}

/// Receiver: checks the tag against the context (whose sender and
/// conversation the receiver authenticated itself) and the delivery
/// service's Ed25519 signature on the stamp. Raises `FrankingError` when
/// either fails: drop such a message.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (plaintext, tag, key_id, mac, signature, service_key, *, sender, conversation, message_id, epoch, recipients, accepted_at, stamper))]
fn receive(
    plaintext: &[u8],
    tag: &[u8],
    key_id: u32,
    mac: &[u8],
    signature: &[u8],
    service_key: &[u8],
    sender: &str,
    conversation: &str,
    message_id: &str,
    epoch: u64,
    recipients: Vec<String>,
    accepted_at: u64,
    stamper: &str,
) -> PyResult<PyReceived> {
    let tag = fr::FrankingTag(array32(tag, "tag")?);
    let stamp = fr::Stamp {
        key_id,
        mac: array32(mac, "stamp MAC")?,
    };
    let sig_bytes: [u8; 64] = signature.try_into().map_err(|_| {
        PyValueError::new_err(format!(
            "signature must be 64 bytes, got {}",
            signature.len()
        ))
    })?;
    let sig = ed25519_dalek::Signature::from_bytes(&sig_bytes);
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&array32(service_key, "service key")?)
        .map_err(|e| PyValueError::new_err(format!("service key: {e}")))?;
    let ctx = fr::Context {
        info: fr::MessageInfo::new(sender, conversation, message_id),
        epoch,
        recipients,
        accepted_at,
        stamper: stamper.to_string(),
    };
    let inner = fr::receive(plaintext, &tag, stamp, &sig, &vk, ctx).map_err(franking_err)?;
    Ok(PyReceived { inner })
}

fn reporter_key(
    reporter: &Option<(String, String, Vec<u8>)>,
) -> PyResult<Option<ed25519_dalek::SigningKey>> {
    reporter
        .as_ref()
        .map(|(_, _, k)| {
            Ok(ed25519_dalek::SigningKey::from_bytes(&array32(
                k,
                "reporter signing key",
            )?))
        })
        .transpose()
}

/// Receiver: the JSON body of a report (`POST /v1/reports`); with
/// `reporter=(account, device, ed25519_secret_key_32_bytes)` it is signed by
/// the reporter's enrolled device.
#[pyfunction]
#[pyo3(signature = (messages, reason = None, text = None, reporter = None))]
fn report<'py>(
    py: Python<'py>,
    messages: Vec<PyRef<'py, PyReceived>>,
    reason: Option<&str>,
    text: Option<&str>,
    reporter: Option<(String, String, Vec<u8>)>,
) -> PyResult<Bound<'py, PyBytes>> {
    if messages.is_empty() {
        return Err(PyValueError::new_err("a report needs at least one message"));
    }
    let key = reporter_key(&reporter)?;
    let who = match (&reporter, &key) {
        (Some((a, d, _)), Some(k)) => Some((a.as_str(), d.as_str(), k)),
        _ => None,
    };
    let refs: Vec<&fr::Received> = messages.iter().map(|m| &m.inner).collect();
    Ok(PyBytes::new(py, &fr::report(&refs, reason, text, who)))
}

/// Receiver: like `report`, with attachment ciphertexts for each message:
/// `[(received, [(index into received.attachments, ciphertext), ...]), ...]`
/// (`report_with_attachments` of the Rust client). The service opens and
/// hashes each ciphertext it is given.
#[pyfunction]
#[pyo3(signature = (messages, reason = None, text = None, reporter = None))]
fn report_with_attachments<'py>(
    py: Python<'py>,
    messages: Vec<(PyRef<'py, PyReceived>, fr::AttachmentCiphertexts)>,
    reason: Option<&str>,
    text: Option<&str>,
    reporter: Option<(String, String, Vec<u8>)>,
) -> PyResult<Bound<'py, PyBytes>> {
    if messages.is_empty() {
        return Err(PyValueError::new_err("a report needs at least one message"));
    }
    for (n, (m, cts)) in messages.iter().enumerate() {
        let have = m.inner.content().attachments.len();
        if let Some((i, _)) = cts.iter().find(|(i, _)| *i >= have) {
            return Err(PyValueError::new_err(format!(
                "message {n}: attachment index {i} is out of range (it has {have})"
            )));
        }
    }
    let key = reporter_key(&reporter)?;
    let who = match (&reporter, &key) {
        (Some((a, d, _)), Some(k)) => Some((a.as_str(), d.as_str(), k)),
        _ => None,
    };
    let pairs: Vec<(&fr::Received, fr::AttachmentCiphertexts)> = messages
        .iter()
        .map(|(m, cts)| (&m.inner, cts.clone()))
        .collect();
    Ok(PyBytes::new(
        py,
        &fr::report_with_attachments(&pairs, reason, text, who),
    ))
}

/// The Ed25519 public key of a 32-byte secret key (to enrol a device).
#[pyfunction]
fn ed25519_public_key<'py>(py: Python<'py>, secret: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let k = ed25519_dalek::SigningKey::from_bytes(&array32(secret, "secret key")?);
    Ok(PyBytes::new(py, k.verifying_key().as_bytes()))
}

// ---------------------------------------------------------------- module

#[pymodule]
fn _bulwark(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("BulwarkError", py.get_type::<BulwarkError>())?;
    m.add("ImageError", py.get_type::<ImageError>())?;
    m.add("VideoError", py.get_type::<VideoError>())?;
    m.add("IndexFileError", py.get_type::<IndexFileError>())?;
    m.add("ListFormatError", py.get_type::<ListFormatError>())?;
    m.add("VoucherError", py.get_type::<VoucherError>())?;
    m.add("FrankingError", py.get_type::<FrankingError>())?;
    m.add("DIHEDRAL_NAMES", bulwark_pdq::DIHEDRAL_NAMES.to_vec())?;
    m.add("INDEX_KERNEL", bulwark_index::kernel_name())?;
    m.add_function(wrap_pyfunction!(hash_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(hash_bytes_dihedral, m)?)?;
    m.add_function(wrap_pyfunction!(hash_pixels, m)?)?;
    m.add_function(wrap_pyfunction!(hash_pixels_dihedral, m)?)?;
    m.add_function(wrap_pyfunction!(hash_files, m)?)?;
    m.add_function(wrap_pyfunction!(hash_bytes_many, m)?)?;
    m.add_function(wrap_pyfunction!(hash_pixels_many, m)?)?;
    m.add_function(wrap_pyfunction!(distance, m)?)?;
    m.add_function(wrap_pyfunction!(parse_hash, m)?)?;
    m.add_function(wrap_pyfunction!(hash_video, m)?)?;
    m.add_function(wrap_pyfunction!(parse_vpdq, m)?)?;
    m.add_function(wrap_pyfunction!(match_videos, m)?)?;
    m.add_class::<NativeIndex>()?;
    m.add_function(wrap_pyfunction!(brute_force, m)?)?;
    m.add_function(wrap_pyfunction!(read_list, m)?)?;
    m.add_function(wrap_pyfunction!(write_list, m)?)?;
    m.add_class::<PyPdata>()?;
    m.add_class::<PyDeviceAccount>()?;
    m.add_class::<PySeenImages>()?;
    m.add_function(wrap_pyfunction!(make_voucher, m)?)?;
    m.add_function(wrap_pyfunction!(sign_voucher, m)?)?;
    m.add_function(wrap_pyfunction!(frank, m)?)?;
    m.add_class::<PyReceived>()?;
    m.add_function(wrap_pyfunction!(receive, m)?)?;
    m.add_function(wrap_pyfunction!(report, m)?)?;
    m.add_function(wrap_pyfunction!(report_with_attachments, m)?)?;
    m.add_class::<PyAttachmentRef>()?;
    m.add_function(wrap_pyfunction!(seal_attachment, m)?)?;
    m.add_function(wrap_pyfunction!(open_attachment, m)?)?;
    m.add_function(wrap_pyfunction!(ed25519_public_key, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
