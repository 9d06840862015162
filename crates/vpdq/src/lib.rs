//! vPDQ: PDQ hashes of video frames, and the vPDQ rule for matching two videos.
//!
//! Frames are decoded by the `ffmpeg` command-line tool in a subprocess (never
//! in this process: a hostile video can at worst crash or stall a child that is
//! killed), converted to RGB24 with swscale's area filter as the reference
//! does, and hashed with the full-resolution PDQ core ([`bulwark_pdq::hash_rgb`]).
//! The subprocess is bounded: wall-clock timeout, frame and byte caps, and the
//! stream's dimensions are checked before decoding starts.
//!
//! - [`hash_video`] / [`hash_video_bytes`]: one [`FrameHash`] per frame (or per
//!   `every_seconds`), printed in the reference's `frame,quality,hash,timestamp` form.
//! - [`match_videos`]: the share of the query's frames found in the other video
//!   and vice versa, and the verdict under a [`MatchRule`].
//! - [`hash_video_extras`] / [`match_videos_extras`]: frames that also carry
//!   extra hashes ([`bulwark_pdq::MultiHash`] kinds, e.g. the content region
//!   inside letterbox or caption framing), and the same rule where a frame is
//!   found through any kind pair a [`Pairing`] allows (docs/VPDQ.md, "Framed
//!   re-uploads").
//!
//! See docs/VPDQ.md for where the reference implementations disagree and which
//! choices Bulwark makes.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_pdq::{HashKind, KindHash, KindSet, MultiHash, Pairing, PdqHash};
use rayon::prelude::*;

/// What went wrong hashing a video or reading hash lines.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `ffmpeg`/`ffprobe` could not be run (not installed?).
    #[error("cannot run {tool}: {source} (install ffmpeg, e.g. `apt-get install ffmpeg`)")]
    ToolMissing {
        /// The program.
        tool: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// The input is not a video ffmpeg can decode, or has no video stream.
    #[error("not a decodable video: {0}")]
    NotAVideo(String),
    /// The video decoded to no frames.
    #[error("the video has no decodable frames")]
    NoFrames,
    /// The video is larger than the configured limits.
    #[error("video too large: {0}")]
    LimitExceeded(String),
    /// Decoding took longer than the timeout; ffmpeg was killed.
    #[error("decoding took longer than {0:?}; ffmpeg was stopped")]
    Timeout(Duration),
    /// ffmpeg failed part-way.
    #[error("ffmpeg failed: {0}")]
    Decode(String),
    /// Reading or writing files or pipes.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A line of a hash file is malformed.
    #[error("line {line}: {message}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// How to hash a video.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Hash one frame every this many seconds (`None`: every frame, as the
    /// reference tool does by default).
    pub every_seconds: Option<f64>,
    /// Scale frames to `size × size` with the area filter before hashing.
    pub size: Option<u32>,
    /// The ffmpeg program.
    pub ffmpeg: PathBuf,
    /// The ffprobe program.
    pub ffprobe: PathBuf,
    /// Wall-clock limit for decoding; ffmpeg is killed past it.
    pub timeout: Duration,
    /// Largest accepted frame side.
    pub max_dimension: u32,
    /// Largest accepted frame area.
    pub max_pixels: u64,
    /// Most frames decoded.
    pub max_frames: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            every_seconds: None,
            size: None,
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            timeout: Duration::from_secs(600),
            max_dimension: 8192,
            max_pixels: 36_000_000,
            max_frames: 500_000,
        }
    }
}

/// The PDQ hash of one frame.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FrameHash {
    /// Frame number, from 0, in decode order.
    pub frame: u64,
    /// PDQ quality of the frame.
    pub quality: u32,
    /// PDQ hash of the frame.
    pub hash: PdqHash,
    /// `frame / frame rate`, in seconds (the reference computes it in single precision).
    pub timestamp: f64,
}

impl fmt::Display for FrameHash {
    /// The reference's line: `frame,quality,hash,timestamp` (3 decimals).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},{},{},{:.3}",
            self.frame, self.quality, self.hash, self.timestamp
        )
    }
}

/// Parses one `frame,quality,hash,timestamp` line.
pub fn parse_line(line: &str) -> Result<FrameHash, String> {
    let parts: Vec<&str> = line.trim().split(',').collect();
    let [frame, quality, hash, timestamp] = parts[..] else {
        return Err(format!(
            "expected frame,quality,hash,timestamp, found {} field(s)",
            parts.len()
        ));
    };
    let frame = frame
        .parse()
        .map_err(|_| format!("frame number {frame:?} is not an integer"))?;
    let quality: u32 = quality
        .parse()
        .ok()
        .filter(|q| *q <= 100)
        .ok_or_else(|| format!("quality {quality:?} is not 0-100"))?;
    let hash = hash.parse().map_err(|e| format!("{e}"))?;
    let timestamp: f64 = timestamp
        .parse()
        .ok()
        .filter(|t: &f64| t.is_finite() && *t >= 0.0)
        .ok_or_else(|| format!("timestamp {timestamp:?} is not a non-negative number"))?;
    Ok(FrameHash {
        frame,
        quality,
        hash,
        timestamp,
    })
}

/// Parses a hash file (blank lines skipped); the first bad line is an error.
pub fn parse_lines(text: &str) -> Result<Vec<FrameHash>, Error> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            parse_line(l).map_err(|message| Error::Parse {
                line: i + 1,
                message,
            })
        })
        .collect()
}

/// True when the first bytes look like a video container Bulwark hands to
/// ffmpeg (MP4/MOV/3GP, Matroska/WebM, AVI, MPEG-TS, FLV). Cheap; ffprobe has
/// the last word.
pub fn sniff(head: &[u8]) -> bool {
    (head.len() >= 12 && &head[4..8] == b"ftyp")
        || head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3])
        || (head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"AVI ")
        || head.starts_with(b"FLV")
        || (head.len() > 188 && head[0] == 0x47 && head[188] == 0x47)
}

/// A video stream's geometry and frame rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Average frame rate (frames per second).
    pub fps: f64,
}

fn run_tool(program: &Path, args: &[&std::ffi::OsStr]) -> Result<std::process::Output, Error> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::ToolMissing {
            tool: program.display().to_string(),
            source,
        })
}

fn parse_rate(s: &str) -> Option<f64> {
    let (n, d) = s.split_once('/').unwrap_or((s, "1"));
    let (n, d): (f64, f64) = (n.trim().parse().ok()?, d.trim().parse().ok()?);
    (d != 0.0 && n > 0.0).then_some(n / d)
}

/// Reads the first video stream's size and frame rate with ffprobe.
pub fn probe(path: &Path, opts: &Options) -> Result<VideoInfo, Error> {
    let out = run_tool(
        &opts.ffprobe,
        &[
            "-v".as_ref(),
            "error".as_ref(),
            "-select_streams".as_ref(),
            "v:0".as_ref(),
            "-show_entries".as_ref(),
            "stream=width,height,avg_frame_rate,r_frame_rate".as_ref(),
            "-of".as_ref(),
            "csv=p=0".as_ref(),
            path.as_os_str(),
        ],
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or("").trim();
    if !out.status.success() || line.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::NotAVideo(
            err.lines()
                .last()
                .unwrap_or("no video stream")
                .trim()
                .to_string(),
        ));
    }
    let f: Vec<&str> = line.split(',').collect();
    let (Some(w), Some(h)) = (
        f.first().and_then(|x| x.parse::<u32>().ok()),
        f.get(1).and_then(|x| x.parse::<u32>().ok()),
    ) else {
        return Err(Error::NotAVideo(format!(
            "unreadable stream geometry {line:?}"
        )));
    };
    let fps = f
        .get(3)
        .and_then(|r| parse_rate(r))
        .or_else(|| f.get(2).and_then(|r| parse_rate(r)))
        .ok_or_else(|| Error::NotAVideo(format!("no frame rate in {line:?}")))?;
    Ok(VideoInfo {
        width: w,
        height: h,
        fps,
    })
}

/// Hashes a video file.
pub fn hash_video(path: &Path, opts: &Options) -> Result<Vec<FrameHash>, Error> {
    Ok(hash_frames(path, opts, |px, w, h| {
        let r = bulwark_pdq::hash_rgb(px, w, h);
        (r.quality, r.hash, ())
    })?
    .into_iter()
    .map(|(f, ())| f)
    .collect())
}

/// Hashes a video file's frames with their extra hashes of `kinds`
/// ([`bulwark_pdq::MultiHash`]: the content region inside letterbox,
/// caption or screenshot framing, crops), each taken from the same decoded
/// frame as the plain hash, which is bit-exact with [`hash_video`]'s.
pub fn hash_video_extras(
    path: &Path,
    opts: &Options,
    kinds: KindSet,
) -> Result<Vec<FrameExtras>, Error> {
    Ok(hash_frames(path, opts, |px, w, h| {
        let m = MultiHash::of_rgb(px, w, h, kinds);
        let full = m.full();
        (full.quality, full.hash, m.extras().to_vec())
    })?
    .into_iter()
    .map(|(frame, extras)| FrameExtras { frame, extras })
    .collect())
}

/// The container's duration in seconds (ffprobe), if it knows one.
pub fn duration(path: &Path, opts: &Options) -> Result<Option<f64>, Error> {
    let out = run_tool(
        &opts.ffprobe,
        &[
            "-v".as_ref(),
            "error".as_ref(),
            "-show_entries".as_ref(),
            "format=duration".as_ref(),
            "-of".as_ref(),
            "csv=p=0".as_ref(),
            path.as_os_str(),
        ],
    )?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|d| d.is_finite() && *d > 0.0))
}

/// [`probe`], refusing zero-sized frames (`NotAVideo`) and frames over
/// `opts`' size limits (`LimitExceeded`) before anything decodes them.
pub fn probe_within_limits(path: &Path, opts: &Options) -> Result<VideoInfo, Error> {
    let info = probe(path, opts)?;
    if info.width == 0 || info.height == 0 {
        return Err(Error::NotAVideo("zero-sized frames".into()));
    }
    if info.width > opts.max_dimension
        || info.height > opts.max_dimension
        || u64::from(info.width) * u64::from(info.height) > opts.max_pixels
    {
        return Err(Error::LimitExceeded(format!(
            "{}×{} frames exceed the limits ({} per side, {} pixels)",
            info.width, info.height, opts.max_dimension, opts.max_pixels
        )));
    }
    Ok(info)
}

/// Decodes a video and hashes its frames with `hash` (RGB24 pixels, width,
/// height → quality, plain hash, anything else of the frame).
fn hash_frames<T: Send>(
    path: &Path,
    opts: &Options,
    hash: impl Fn(&[u8], usize, usize) -> (u32, PdqHash, T) + Sync,
) -> Result<Vec<(FrameHash, T)>, Error> {
    let info = probe_within_limits(path, opts)?;
    let (w, h) = match opts.size {
        Some(n) if n > 0 => (n, n),
        _ => (info.width, info.height),
    };
    let frame_bytes = w as usize * h as usize * 3;
    let mut args: Vec<String> = vec![
        "-nostdin".into(),
        "-v".into(),
        "error".into(),
        // Frames as stored, as the reference decodes them (no display rotation).
        "-noautorotate".into(),
        "-i".into(),
        path.display().to_string(),
        "-map".into(),
        "0:v:0".into(),
        // Every decoded frame once: no duplication or dropping to a frame rate.
        "-fps_mode".into(),
        "passthrough".into(),
    ];
    if let Some(n) = opts.size.filter(|&n| n > 0) {
        args.push("-vf".into());
        args.push(format!("scale={n}:{n}:flags=area"));
    }
    args.extend(
        [
            "-sws_flags",
            "area",
            "-pix_fmt",
            "rgb24",
            "-f",
            "rawvideo",
            "-",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let mut child = Command::new(&opts.ffmpeg)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::ToolMissing {
            tool: opts.ffmpeg.display().to_string(),
            source,
        })?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::Decode("no stdout".into()))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| Error::Decode("no stderr".into()))?;
    // Keep the last 16 KiB of ffmpeg's complaints for the error message.
    let err_buf = Arc::new(Mutex::new(Vec::<u8>::new()));
    let err_thread = {
        let err_buf = Arc::clone(&err_buf);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let mut b = err_buf.lock().unwrap_or_else(|e| e.into_inner());
                b.extend_from_slice(&chunk[..n]);
                let excess = b.len().saturating_sub(16 << 10);
                b.drain(..excess);
            }
        })
    };
    // A watchdog kills ffmpeg when the deadline passes.
    let child = Arc::new(Mutex::new(child));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let (child, done, timed_out) = (
            Arc::clone(&child),
            Arc::clone(&done),
            Arc::clone(&timed_out),
        );
        let deadline = Instant::now() + opts.timeout;
        std::thread::spawn(move || {
            use std::sync::atomic::Ordering;
            while !done.load(Ordering::Acquire) {
                if Instant::now() >= deadline {
                    timed_out.store(true, Ordering::Release);
                    let _ = child.lock().unwrap_or_else(|e| e.into_inner()).kill();
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let step = opts
        .every_seconds
        .filter(|s| *s > 0.0)
        .map(|s| ((s * info.fps).round() as u64).max(1))
        .unwrap_or(1);
    let fps32 = info.fps as f32;
    // A reader thread drains ffmpeg's pipe into a small bounded queue, so that
    // ffmpeg decodes the next frames while this thread hashes (the pipe alone
    // holds less than one frame).
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, Vec<u8>)>(8);
    let max_frames = opts.max_frames;
    let reader = std::thread::spawn(move || -> Result<(), Error> {
        let mut index = 0u64;
        loop {
            let mut px = vec![0u8; frame_bytes];
            if !read_full(&mut stdout, &mut px)? {
                return Ok(());
            }
            if index >= max_frames {
                return Err(Error::LimitExceeded(format!(
                    "more than {max_frames} frames"
                )));
            }
            if index.is_multiple_of(step) && tx.send((index, px)).is_err() {
                return Ok(());
            }
            index += 1;
        }
    });
    let mut hashes = Vec::new();
    let mut batch: Vec<(u64, Vec<u8>)> = Vec::new();
    let batch_len = rayon::current_num_threads() * 2;
    let flush = |batch: &mut Vec<(u64, Vec<u8>)>, hashes: &mut Vec<(FrameHash, T)>| {
        hashes.par_extend(batch.par_drain(..).map(|(i, px)| {
            let (quality, code, more) = hash(&px, w as usize, h as usize);
            (
                FrameHash {
                    frame: i,
                    quality,
                    hash: code,
                    timestamp: f64::from(i as f32 / fps32),
                },
                more,
            )
        }));
    };
    for item in rx {
        batch.push(item);
        if batch.len() >= batch_len {
            flush(&mut batch, &mut hashes);
        }
    }
    flush(&mut batch, &mut hashes);
    let read_err = match reader.join() {
        Ok(r) => r.err(),
        Err(_) => Some(Error::Decode("the frame reader failed".into())),
    };
    let status = {
        let mut c = child.lock().unwrap_or_else(|e| e.into_inner());
        if read_err.is_some() {
            let _ = c.kill();
        }
        c.wait()?
    };
    done.store(true, std::sync::atomic::Ordering::Release);
    let _ = watchdog.join();
    let _ = err_thread.join();
    if timed_out.load(std::sync::atomic::Ordering::Acquire) {
        return Err(Error::Timeout(opts.timeout));
    }
    if let Some(e) = read_err {
        return Err(e);
    }
    let err_text =
        String::from_utf8_lossy(&err_buf.lock().unwrap_or_else(|e| e.into_inner())).to_string();
    // ffmpeg runs at `-v error`: anything it says is a decoding error (a
    // truncated or corrupt stream). Refuse rather than hash part of a video.
    if status.success() && !err_text.trim().is_empty() {
        return Err(Error::Decode(format!(
            "the stream is damaged or truncated: {}",
            err_text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
        )));
    }
    if !status.success() {
        return Err(Error::Decode(
            err_text
                .lines()
                .last()
                .unwrap_or("exited with an error")
                .trim()
                .to_string(),
        ));
    }
    if hashes.is_empty() {
        return Err(Error::NoFrames);
    }
    hashes.sort_by_key(|f| f.0.frame);
    Ok(hashes)
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean end of stream; a
/// partial last frame is an error (a truncated stream).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<bool, Error> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(Error::Decode(format!(
                    "stream ended inside a frame ({got} of {} bytes)",
                    buf.len()
                )));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// Hashes video bytes (an upload): written to a private temporary file first,
/// since containers such as MP4 need seeking.
pub fn hash_video_bytes(bytes: &[u8], opts: &Options) -> Result<Vec<FrameHash>, Error> {
    let mut f = tempfile::NamedTempFile::new()?;
    std::io::Write::write_all(&mut f, bytes)?;
    hash_video(f.path(), opts)
}

/// [`hash_video_bytes`] with the extra hashes of `kinds` ([`hash_video_extras`]).
pub fn hash_video_bytes_extras(
    bytes: &[u8],
    opts: &Options,
    kinds: KindSet,
) -> Result<Vec<FrameExtras>, Error> {
    let mut f = tempfile::NamedTempFile::new()?;
    std::io::Write::write_all(&mut f, bytes)?;
    hash_video_extras(f.path(), opts, kinds)
}

/// One frame's plain hash and its extra hashes (kinds other than
/// [`HashKind::Full`], each at most once).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FrameExtras {
    /// The plain frame hash, as [`hash_video`] gives it.
    pub frame: FrameHash,
    /// The extras computed for it (absent kinds: e.g. no `region` when no
    /// framing was found).
    pub extras: Vec<KindHash>,
}

impl FrameExtras {
    /// A frame with no extras.
    pub fn plain(frame: FrameHash) -> FrameExtras {
        FrameExtras {
            frame,
            extras: Vec::new(),
        }
    }
}

/// When two videos match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatchRule {
    /// Two frames match when their distance is at most this.
    pub distance: u32,
    /// Frames below this quality are ignored.
    pub quality: u32,
    /// Minimum share (percent) of the query's frames found in the other video.
    pub query_percent: f64,
    /// Minimum share (percent) of the other video's frames found in the query.
    pub compared_percent: f64,
}

impl Default for MatchRule {
    /// python-threatexchange's (HMA's) defaults: distance ≤ 31, quality ≥ 50,
    /// query ≥ 80 %, compared ≥ 0 %.
    fn default() -> Self {
        MatchRule {
            distance: 31,
            quality: 50,
            query_percent: 80.0,
            compared_percent: 0.0,
        }
    }
}

/// The outcome of comparing two videos.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MatchResult {
    /// Percent of the query's (filtered, de-duplicated) frames that match a frame of the other.
    pub query_percent: f64,
    /// Percent of the other's frames that match a frame of the query.
    pub compared_percent: f64,
    /// Both percentages pass the rule's thresholds.
    pub is_match: bool,
}

/// Drops low-quality frames and repeated hashes, keeping first occurrences.
pub fn prepare(frames: &[FrameHash], quality: u32) -> Vec<PdqHash> {
    let mut seen = HashSet::new();
    frames
        .iter()
        .filter(|f| f.quality >= quality)
        .filter(|f| seen.insert(f.hash))
        .map(|f| f.hash)
        .collect()
}

/// Compares two videos' frame hashes under `rule`: [`match_videos_extras`]
/// with no extras, which is python-threatexchange's rule.
pub fn match_videos(query: &[FrameHash], compared: &[FrameHash], rule: &MatchRule) -> MatchResult {
    let plain = |v: &[FrameHash]| {
        v.iter()
            .copied()
            .map(FrameExtras::plain)
            .collect::<Vec<_>>()
    };
    match_videos_extras(&plain(query), &plain(compared), rule, Pairing::FullOnly).result
}

/// One prepared frame for [`match_videos_extras`]: its plain hash first, then
/// its extras.
pub type FrameKinds = Vec<(HashKind, PdqHash)>;

/// [`prepare`] for frames with extras: the same frames [`prepare`] keeps
/// (plain quality at least `quality`, first occurrence of each plain hash),
/// each with its plain hash first and then its extras of at least `quality`.
pub fn prepare_extras(frames: &[FrameExtras], quality: u32) -> Vec<FrameKinds> {
    let mut seen = HashSet::new();
    frames
        .iter()
        .filter(|f| f.frame.quality >= quality)
        .filter(|f| seen.insert(f.frame.hash))
        .map(|f| {
            std::iter::once((HashKind::Full, f.frame.hash))
                .chain(
                    f.extras
                        .iter()
                        .filter(|e| e.quality >= quality && e.kind != HashKind::Full)
                        .map(|e| (e.kind, e.hash)),
                )
                .collect()
        })
        .collect()
}

/// The outcome of [`match_videos_extras`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ExtrasMatchResult {
    /// The percentages and verdict, counting a frame found through any
    /// allowed pair of hashes.
    pub result: MatchResult,
    /// Percent of the query's frames found only through an extra hash
    /// (their plain hash matched no frame of the other video).
    pub query_percent_via_extras: f64,
    /// The (query kind, compared kind) pair that found most of those frames;
    /// `None` when every query frame found was found plainly.
    pub via: Option<(HashKind, HashKind)>,
}

/// How a frame was found in the other video: plainly, through an extra
/// pair, or not at all.
fn find_frame(
    q: &FrameKinds,
    others: &[FrameKinds],
    allowed: impl Fn(HashKind, HashKind) -> bool,
    distance: u32,
) -> Option<(HashKind, HashKind)> {
    if others.iter().any(|o| q[0].1.distance(&o[0].1) <= distance) {
        return Some((HashKind::Full, HashKind::Full));
    }
    if q.len() == 1 && others.iter().all(|o| o.len() == 1) {
        return None;
    }
    for o in others {
        for (qk, qh) in q {
            for (ok, oh) in o {
                if (*qk, *ok) != (HashKind::Full, HashKind::Full)
                    && allowed(*qk, *ok)
                    && qh.distance(oh) <= distance
                {
                    return Some((*qk, *ok));
                }
            }
        }
    }
    None
}

/// [`match_videos`] where a frame is found when its plain hash or one of its
/// extras is within the distance of the other frame's plain hash or one of
/// its extras, for the kind pairs `pairing` allows (query kind first, also
/// when the compared video's frames are looked up in the query). With no
/// extras on either side, or [`Pairing::FullOnly`], the result equals
/// [`match_videos`]'s.
pub fn match_videos_extras(
    query: &[FrameExtras],
    compared: &[FrameExtras],
    rule: &MatchRule,
    pairing: Pairing,
) -> ExtrasMatchResult {
    let q = prepare_extras(query, rule.quality);
    let c = prepare_extras(compared, rule.quality);
    match_prepared(&q, &c, rule, pairing)
}

/// [`match_videos_extras`] on frames [`prepare_extras`] already prepared at
/// `rule.quality`: for a caller that compares one query with many videos.
pub fn match_prepared(
    q: &[FrameKinds],
    c: &[FrameKinds],
    rule: &MatchRule,
    pairing: Pairing,
) -> ExtrasMatchResult {
    if q.is_empty() || c.is_empty() {
        return ExtrasMatchResult {
            result: MatchResult {
                query_percent: 0.0,
                compared_percent: 0.0,
                is_match: false,
            },
            query_percent_via_extras: 0.0,
            via: None,
        };
    }
    let found_q: Vec<Option<(HashKind, HashKind)>> = q
        .par_iter()
        .map(|x| find_frame(x, c, |a, b| pairing.allows(a, b), rule.distance))
        .collect();
    let found_c = c
        .par_iter()
        .filter(|x| find_frame(x, q, |a, b| pairing.allows(b, a), rule.distance).is_some())
        .count();
    let plain = (HashKind::Full, HashKind::Full);
    let mut via: Vec<((HashKind, HashKind), usize)> = Vec::new();
    for p in found_q.iter().flatten().filter(|p| **p != plain) {
        match via.iter_mut().find(|(k, _)| k == p) {
            Some((_, n)) => *n += 1,
            None => via.push((*p, 1)),
        }
    }
    let extra_frames: usize = via.iter().map(|(_, n)| n).sum();
    let pct = |n: usize, of: usize| n as f64 * 100.0 / of as f64;
    let query_percent = pct(found_q.iter().flatten().count(), q.len());
    let compared_percent = pct(found_c, c.len());
    ExtrasMatchResult {
        result: MatchResult {
            query_percent,
            compared_percent,
            is_match: query_percent >= rule.query_percent
                && compared_percent >= rule.compared_percent,
        },
        query_percent_via_extras: pct(extra_frames, q.len()),
        via: via.iter().max_by_key(|(_, n)| *n).map(|(k, _)| *k),
    }
}

/// Entry points for `cargo fuzz` (see fuzz/ at the repository root).
#[doc(hidden)]
pub mod fuzzing {
    /// Parsing arbitrary text as hash lines must not panic, and what parses
    /// prints back to lines that parse to the same values.
    pub fn parse(data: &[u8]) {
        if let Ok(s) = std::str::from_utf8(data)
            && let Ok(frames) = crate::parse_lines(s)
        {
            for f in frames {
                let again = crate::parse_line(&f.to_string()).expect("round trip");
                assert_eq!(again.hash, f.hash);
                assert_eq!(again.frame, f.frame);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_pdq::Rect;

    fn code(fill: u8) -> PdqHash {
        PdqHash::from_bytes([fill; 32])
    }

    fn frame(i: u64, full: u8, extras: &[(HashKind, u8)]) -> FrameExtras {
        FrameExtras {
            frame: FrameHash {
                frame: i,
                quality: 100,
                hash: code(full),
                timestamp: i as f64,
            },
            extras: extras
                .iter()
                .map(|&(kind, fill)| KindHash {
                    kind,
                    hash: code(fill),
                    quality: 100,
                    rect: Rect {
                        x: 0,
                        y: 0,
                        width: 1,
                        height: 1,
                    },
                })
                .collect(),
        }
    }

    /// Which kind pairs count, and from which side, by hand: 0x00, 0x0f,
    /// 0xf0 and 0xff are 128 bits from each other but for 0x00/0xff (256).
    #[test]
    fn extras_match_by_the_pairing_and_report_how() {
        let rule = MatchRule::default();
        // The query's frame 0 matches plainly; frame 1 only through its
        // region against the bank's plain hash; frame 2 not at all.
        let query = [
            frame(0, 0x00, &[]),
            frame(1, 0x0f, &[(HashKind::Region, 0xf0)]),
            frame(2, 0xff, &[]),
        ];
        let bank = [frame(0, 0x00, &[]), frame(1, 0xf0, &[])];
        let plain = match_videos_extras(&query, &bank, &rule, Pairing::FullOnly);
        // By hand: query frame 0 of 3 is found; bank frame 0 of 2 is.
        let by_hand = MatchResult {
            query_percent: 100.0 / 3.0,
            compared_percent: 50.0,
            is_match: false,
        };
        assert_eq!(plain.result, by_hand);
        assert_eq!(plain.via, None);
        for pairing in [Pairing::QueryExtras, Pairing::Both] {
            let r = match_videos_extras(&query, &bank, &rule, pairing);
            assert!((r.result.query_percent - 200.0 / 3.0).abs() < 1e-9, "{r:?}");
            assert_eq!(r.result.compared_percent, 100.0);
            assert!((r.query_percent_via_extras - 100.0 / 3.0).abs() < 1e-9);
            assert_eq!(r.via, Some((HashKind::Region, HashKind::Full)));
        }
        // The region on the bank's side: only `Both` compares it.
        let (query, bank) = (
            [frame(0, 0xf0, &[])],
            [frame(0, 0x0f, &[(HashKind::Region, 0xf0)])],
        );
        let r = match_videos_extras(&query, &bank, &rule, Pairing::QueryExtras);
        assert_eq!(r.result.query_percent, 0.0);
        let r = match_videos_extras(&query, &bank, &rule, Pairing::Both);
        assert_eq!((r.result.query_percent, r.result.is_match), (100.0, true));
        assert_eq!(r.via, Some((HashKind::Full, HashKind::Region)));
        // A crop kind meets only the same crop (or a whole kind).
        let (query, bank) = (
            [frame(0, 0x00, &[(HashKind::CornerTopLeft, 0xf0)])],
            [frame(0, 0xff, &[(HashKind::CornerTopRight, 0xf0)])],
        );
        let r = match_videos_extras(&query, &bank, &rule, Pairing::Both);
        assert_eq!(r.result.query_percent, 0.0);
    }
}
