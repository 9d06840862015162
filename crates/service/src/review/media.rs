//! What a reviewer may see of an item's media: grey, box-downscaled PNG
//! thumbnails, never the original file ([`thumbnail`]: [`HIDDEN_SIDE`]
//! pixels until revealed, then [`REVEALED_SIDE`]), and videos as a strip of
//! a few evenly spaced still frames ([`strip`]), extracted once with ffmpeg
//! (the same program, limits and timeout as vPDQ hashing) and kept in
//! `console_frames`. The console shows each frame like an image, blurred
//! until revealed against the daily budget; nothing ever plays.
//!
//! [`load`] reads an item's medium (a report's decrypted attachment, an
//! opened voucher's derivative, a recorded match's thumbnail or a kept
//! frame) as pixels; the console's media route and its reveal check call
//! it. The SQL is `bulwark_store::console::{items, video}`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use bulwark_store::Store;
use bulwark_store::console::{items as store, video as frames_store};
use bulwark_vpdq::Error as VideoError;

use crate::error::{Error, Result};

/// Largest side, in pixels, of a thumbnail before it is revealed.
pub const HIDDEN_SIDE: u32 = 16;
/// Largest side of a revealed thumbnail (and of a kept video frame).
pub const REVEALED_SIDE: u32 = 320;

/// How frame strips are extracted: vPDQ's tools and limits
/// (`media::Pool::video_options`) and how many frames a strip has (1–16).
#[derive(Debug, Clone)]
pub struct StripOptions {
    /// ffmpeg, ffprobe, frame limits and the timeout.
    pub video: bulwark_vpdq::Options,
    /// Frames in a strip.
    pub frames: u32,
}

/// One extracted frame.
pub struct Frame {
    /// Its time in the video, in milliseconds.
    pub at_ms: i64,
    /// Grey pixels.
    pub image: bulwark_pdq::Image,
}

fn tool_error(tool: &std::path::Path, source: std::io::Error) -> VideoError {
    VideoError::ToolMissing {
        tool: tool.display().to_string(),
        source,
    }
}

/// `count` evenly spaced frames of a video (the middle of each of `count`
/// equal parts), grey, scaled so the larger side is at most `side`.
/// Checked against the same frame limits as hashing, decoded by ffmpeg in a
/// subprocess that is killed after `opts.timeout`.
pub fn sample_frames(
    bytes: &[u8],
    opts: &bulwark_vpdq::Options,
    count: u32,
    side: u32,
) -> Result<Vec<Frame>, VideoError> {
    let count = count.clamp(1, 16);
    let mut file = tempfile::NamedTempFile::new()?;
    std::io::Write::write_all(&mut file, bytes)?;
    let path = file.path();
    let info = bulwark_vpdq::probe_within_limits(path, opts)?;
    let scale = (f64::from(info.width.max(info.height)) / f64::from(side.max(1))).max(1.0);
    let tw = ((f64::from(info.width) / scale).round() as u32).max(1);
    let th = ((f64::from(info.height) / scale).round() as u32).max(1);
    // Without a known duration: one frame a second from the start.
    let (start, step) = match bulwark_vpdq::duration(path, opts)? {
        Some(d) => (d / f64::from(count) / 2.0, d / f64::from(count)),
        None => (0.0, 1.0),
    };
    let deadline = Instant::now() + opts.timeout;
    let mut frames = Vec::new();
    for k in 0..count {
        // One accurate seek per frame (decoding from the keyframe before it).
        let at = start + step * f64::from(k);
        let px = one_frame(opts, path, at, tw, th, deadline)?;
        if px.len() < tw as usize * th as usize {
            break; // past the end (a video without a known duration)
        }
        frames.push(Frame {
            at_ms: (at * 1000.0).round() as i64,
            image: bulwark_pdq::Image {
                width: tw,
                height: th,
                channels: 1,
                pixels: px,
            },
        });
    }
    if frames.is_empty() {
        return Err(VideoError::NoFrames);
    }
    Ok(frames)
}

/// The grey `tw × th` pixels of the frame at `at` seconds (empty past the
/// end), by an ffmpeg subprocess killed at `deadline`.
fn one_frame(
    opts: &bulwark_vpdq::Options,
    path: &std::path::Path,
    at: f64,
    tw: u32,
    th: u32,
    deadline: Instant,
) -> Result<Vec<u8>, VideoError> {
    let mut child = Command::new(&opts.ffmpeg)
        .args(["-nostdin", "-v", "error", "-noautorotate", "-ss"])
        .arg(format!("{at:.3}"))
        .arg("-i")
        .arg(path)
        .args(["-map", "0:v:0", "-an", "-frames:v", "1", "-vf"])
        .arg(format!("scale={tw}:{th}:flags=area,format=gray"))
        .args(["-pix_fmt", "gray", "-f", "rawvideo", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool_error(&opts.ffmpeg, e))?;
    let limit = u64::from(tw) * u64::from(th);
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| VideoError::Decode("no stdout".into()))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| VideoError::Decode("no stderr".into()))?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let r = (&mut stdout).take(limit).read_to_end(&mut buf);
        // Drain the rest (there should be none) so ffmpeg is never blocked.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        r.map(|_| buf)
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(16 << 10).read_to_end(&mut buf);
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        String::from_utf8_lossy(&buf).to_string()
    });
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(VideoError::Timeout(opts.timeout));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let out = reader
        .join()
        .map_err(|_| VideoError::Decode("the frame reader failed".into()))??;
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(VideoError::Decode(
            err.lines()
                .last()
                .unwrap_or("exited with an error")
                .trim()
                .to_string(),
        ));
    }
    Ok(out)
}

/// A video's frames in the strip: `(media id, time in ms)`.
pub type Strip = Vec<(String, i64)>;

/// The media id of frame `k` of the video whose media id is `base`.
pub fn frame_id(base: &str, k: usize) -> String {
    format!("{base}.f{k}")
}

/// True for a frame's media id.
pub fn is_frame(media: &str) -> bool {
    media.contains(".f")
}

/// The strip of a video of `item` (media id `base`), extracted on first use
/// from `bytes` (a closure, so the file is only read when needed). `Err`
/// carries why there is no strip (shown on the page): no ffmpeg (not
/// remembered, so installing it helps at once) or an undecodable video
/// (remembered).
pub async fn strip<F, Fut>(
    s: &Store,
    opts: &StripOptions,
    item: &str,
    base: &str,
    bytes: F,
) -> Result<Result<Strip, String>>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Vec<u8>>>>,
{
    if let Some(kept) = stored(s, item, base).await? {
        return Ok(kept);
    }
    let Some(bytes) = bytes().await? else {
        return Ok(Err("the video file is not kept".into()));
    };
    let frames = extract(opts, bytes).await?;
    keep(s, item, base, &frames).await?;
    match frames {
        Err(VideoError::ToolMissing { tool, .. }) => Ok(Err(format!(
            "no frames: {tool} is not installed on the server (install ffmpeg)"
        ))),
        _ => Ok(stored(s, item, base)
            .await?
            .unwrap_or_else(|| Ok(Vec::new()))),
    }
}

/// Extracts a strip's frames off the async runtime.
pub async fn extract(
    opts: &StripOptions,
    bytes: Vec<u8>,
) -> Result<Result<Vec<Frame>, VideoError>> {
    let (video, count) = (opts.video.clone(), opts.frames);
    tokio::task::spawn_blocking(move || sample_frames(&bytes, &video, count, REVEALED_SIDE))
        .await
        .map_err(Error::internal)
}

/// Keeps extracted frames (as grey PNGs) or why there are none. A missing
/// ffmpeg is not kept.
pub async fn keep(
    s: &Store,
    item: &str,
    base: &str,
    frames: &Result<Vec<Frame>, VideoError>,
) -> Result<()> {
    // (media id, time, PNG, why there are no frames)
    type Row = (String, i64, Option<Vec<u8>>, Option<String>);
    let rows: Vec<Row> = match frames {
        Err(VideoError::ToolMissing { .. }) => return Ok(()),
        Err(e) => vec![(base.to_string(), 0, None, Some(e.to_string()))],
        Ok(fs) => {
            let mut out = Vec::new();
            for (k, f) in fs.iter().enumerate() {
                let png = thumbnail(&f.image, REVEALED_SIDE)?;
                out.push((frame_id(base, k), f.at_ms, Some(png), None));
            }
            out
        }
    };
    for (media, at, png, err) in rows {
        frames_store::insert_frame(s, item, &media, at, png.as_deref(), err.as_deref()).await?;
    }
    Ok(())
}

/// What is kept for this video: `None` when nothing is (not extracted yet).
async fn stored(s: &Store, item: &str, base: &str) -> Result<Option<Result<Strip, String>>> {
    let rows = frames_store::frames(s, item, base).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut strip = Vec::new();
    for r in rows {
        if let Some(e) = r.error {
            return Ok(Some(Err(format!("no frames: {e}"))));
        }
        strip.push((r.media, r.at_ms));
    }
    Ok(Some(Ok(strip)))
}

/// Keeps the strip of a matched video upload for each recorded match.
pub async fn keep_for_matches(
    s: &Store,
    opts: &StripOptions,
    file: Vec<u8>,
    match_ids: &[i64],
) -> Result<()> {
    let frames = extract(opts, file).await?;
    for id in match_ids {
        keep(s, &format!("match:{id}"), "0", &frames).await?;
    }
    Ok(())
}

/// An item's medium as pixels (RGB or grey): a kept video frame, a report's
/// decrypted photo attachment (`media` = `MSG-ATT`), an account's opened
/// voucher derivative (`media` = its number) or a recorded match's
/// thumbnail. `None` when there is no such medium (malformed ids included);
/// an error when it is kept but cannot be decoded.
pub async fn load(
    s: &Store,
    kind: &str,
    id: &str,
    media: &str,
) -> Result<Option<bulwark_pdq::Image>> {
    let number = |v: &str| v.parse::<i64>().ok();
    let bytes: Option<Vec<u8>> = match kind {
        _ if is_frame(media) => frames_store::frame_png(s, &format!("{kind}:{id}"), media).await?,
        "report" => {
            let ids = media
                .split_once('-')
                .and_then(|(mi, ai)| Some((number(id)?, number(mi)?, number(ai)?)));
            let Some((report, mi, ai)) = ids else {
                return Ok(None);
            };
            store::attachment_plaintext(s, report, mi, ai).await?
        }
        "account" => {
            let Ok(n) = media.parse::<usize>() else {
                return Ok(None);
            };
            let rows = store::derivatives(s, id).await?;
            let Some(d) = rows.get(n) else {
                return Ok(None);
            };
            // A 32×32 8-bit grey derivative (padded).
            if d.len() < 1024 {
                return Ok(None);
            }
            return Ok(Some(bulwark_pdq::Image {
                width: 32,
                height: 32,
                channels: 1,
                pixels: d[..1024].to_vec(),
            }));
        }
        "match" => match number(id) {
            Some(id) => store::match_thumb(s, id).await?,
            None => None,
        },
        _ => None,
    };
    let Some(bytes) = bytes else { return Ok(None) };
    tokio::task::spawn_blocking(move || {
        bulwark_pdq::decode(&bytes, &bulwark_pdq::Limits::default())
    })
    .await
    .map_err(Error::internal)?
    .map(Some)
    .map_err(|e| Error::internal(format!("decoding a kept medium: {e}")))
}

/// What a reviewer sees of an item's medium ([`load`]): a grey PNG
/// thumbnail of at most [`REVEALED_SIDE`] pixels when `revealed`, else
/// [`HIDDEN_SIDE`], made off the async runtime. `None` when there is no such
/// medium.
pub async fn shown(
    s: &Store,
    kind: &str,
    id: &str,
    media: &str,
    revealed: bool,
) -> Result<Option<Vec<u8>>> {
    let Some(img) = load(s, kind, id, media).await? else {
        return Ok(None);
    };
    let side = if revealed { REVEALED_SIDE } else { HIDDEN_SIDE };
    tokio::task::spawn_blocking(move || thumbnail(&img, side))
        .await
        .map_err(Error::internal)?
        .map(Some)
}

/// Greyscale, box-downscaled so the larger side is at most `side`, as PNG.
pub fn thumbnail(img: &bulwark_pdq::Image, side: u32) -> Result<Vec<u8>> {
    let (w, h, c) = (
        img.width.max(1),
        img.height.max(1),
        img.channels.max(1) as usize,
    );
    let scale = (w.max(h) as f64 / f64::from(side)).max(1.0);
    let (tw, th) = (
        ((w as f64 / scale).round() as u32).max(1),
        ((h as f64 / scale).round() as u32).max(1),
    );
    let mut out = vec![0u8; (tw * th) as usize];
    for ty in 0..th {
        let (y0, y1) = (ty * h / th, ((ty + 1) * h / th).max(ty * h / th + 1));
        for tx in 0..tw {
            let (x0, x1) = (tx * w / tw, ((tx + 1) * w / tw).max(tx * w / tw + 1));
            let (mut sum, mut n) = (0u64, 0u64);
            for y in y0..y1.min(h) {
                for x in x0..x1.min(w) {
                    let p = ((y * w + x) as usize) * c;
                    let px = &img.pixels[p..p + c];
                    let grey = if c >= 3 {
                        (299 * u64::from(px[0]) + 587 * u64::from(px[1]) + 114 * u64::from(px[2]))
                            / 1000
                    } else {
                        u64::from(px[0])
                    };
                    sum += grey;
                    n += 1;
                }
            }
            out[(ty * tw + tx) as usize] = (sum / n.max(1)) as u8;
        }
    }
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &out,
        tw,
        th,
        image::ExtendedColorType::L8,
    )
    .map_err(|e| Error::internal(format!("encoding a thumbnail: {e}")))?;
    Ok(png)
}
