//! Videos as a blurred frame strip: a few evenly spaced frames of a video,
//! grey and at most [`REVEALED_SIDE`](super::items::REVEALED_SIDE) pixels,
//! extracted once with ffmpeg (the same program, limits and timeout as vPDQ
//! hashing: [`crate::media::Pool::video_options`]) and kept in
//! `console_frames`. The item page shows each frame like an image: blurred,
//! grey, 16 px until revealed one at a time against the daily budget. No
//! `<video>` element is ever sent, so nothing plays.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use bulwark_vpdq::Error;

use crate::AppState;

/// One extracted frame.
pub struct Frame {
    /// Its time in the video, in milliseconds.
    pub at_ms: i64,
    /// Grey pixels.
    pub image: bulwark_pdq::Image,
}

fn tool_error(tool: &std::path::Path, source: std::io::Error) -> Error {
    Error::ToolMissing {
        tool: tool.display().to_string(),
        source,
    }
}

/// The container's duration in seconds (ffprobe), if it knows one.
fn duration(path: &std::path::Path, opts: &bulwark_vpdq::Options) -> Result<Option<f64>, Error> {
    let out = Command::new(&opts.ffprobe)
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| tool_error(&opts.ffprobe, e))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|d| d.is_finite() && *d > 0.0))
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
) -> Result<Vec<Frame>, Error> {
    let count = count.clamp(1, 16);
    let mut file = tempfile::NamedTempFile::new()?;
    std::io::Write::write_all(&mut file, bytes)?;
    let path = file.path();
    let info = bulwark_vpdq::probe(path, opts)?;
    if info.width == 0 || info.height == 0 {
        return Err(Error::NotAVideo("zero-sized frames".into()));
    }
    if info.width > opts.max_dimension
        || info.height > opts.max_dimension
        || u64::from(info.width) * u64::from(info.height) > opts.max_pixels
    {
        return Err(Error::LimitExceeded(format!(
            "{}×{} frames exceed the limits",
            info.width, info.height
        )));
    }
    let scale = (f64::from(info.width.max(info.height)) / f64::from(side.max(1))).max(1.0);
    let tw = ((f64::from(info.width) / scale).round() as u32).max(1);
    let th = ((f64::from(info.height) / scale).round() as u32).max(1);
    // Without a known duration: one frame a second from the start.
    let (start, step) = match duration(path, opts)? {
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
        return Err(Error::NoFrames);
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
) -> Result<Vec<u8>, Error> {
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
        .ok_or_else(|| Error::Decode("no stdout".into()))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| Error::Decode("no stderr".into()))?;
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
            return Err(Error::Timeout(opts.timeout));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let out = reader
        .join()
        .map_err(|_| Error::Decode("the frame reader failed".into()))??;
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(Error::Decode(
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
    state: &AppState,
    item: &str,
    base: &str,
    bytes: F,
) -> anyhow::Result<Result<Strip, String>>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<Vec<u8>>>>,
{
    if let Some(s) = stored(state, item, base).await? {
        return Ok(s);
    }
    let Some(bytes) = bytes().await? else {
        return Ok(Err("the video file is not kept".into()));
    };
    let frames = extract(state, bytes).await?;
    store(state, item, base, &frames).await?;
    match frames {
        Err(Error::ToolMissing { tool, .. }) => Ok(Err(format!(
            "no frames: {tool} is not installed on the server (install ffmpeg)"
        ))),
        _ => Ok(stored(state, item, base)
            .await?
            .unwrap_or_else(|| Ok(Vec::new()))),
    }
}

/// Extracts the configured number of frames off the async runtime.
pub async fn extract(
    state: &AppState,
    bytes: Vec<u8>,
) -> anyhow::Result<Result<Vec<Frame>, Error>> {
    let opts = state.media.video_options().clone();
    let count = state.config.console.video_frames;
    Ok(tokio::task::spawn_blocking(move || {
        sample_frames(&bytes, &opts, count, super::items::REVEALED_SIDE)
    })
    .await?)
}

/// Keeps extracted frames (as grey PNGs) or why there are none. A missing
/// ffmpeg is not kept.
pub async fn store(
    state: &AppState,
    item: &str,
    base: &str,
    frames: &Result<Vec<Frame>, Error>,
) -> anyhow::Result<()> {
    let s = &state.store;
    // (media id, time, PNG, why there are no frames)
    type Row = (String, i64, Option<Vec<u8>>, Option<String>);
    let rows: Vec<Row> = match frames {
        Err(Error::ToolMissing { .. }) => return Ok(()),
        Err(e) => vec![(base.to_string(), 0, None, Some(e.to_string()))],
        Ok(fs) => {
            let mut out = Vec::new();
            for (k, f) in fs.iter().enumerate() {
                let png = super::items::thumbnail(&f.image, super::items::REVEALED_SIDE)?;
                out.push((frame_id(base, k), f.at_ms, Some(png), None));
            }
            out
        }
    };
    for (media, at, png, err) in rows {
        crate::db::console::video::insert_frame(
            s,
            item,
            &media,
            at,
            png.as_deref(),
            err.as_deref(),
        )
        .await?;
    }
    Ok(())
}

/// What is kept for this video: `None` when nothing is (not extracted yet).
async fn stored(
    state: &AppState,
    item: &str,
    base: &str,
) -> anyhow::Result<Option<Result<Strip, String>>> {
    let s = &state.store;
    let rows = crate::db::console::video::frames(s, item, base).await?;
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

/// A kept frame's PNG.
pub async fn frame_png(
    state: &AppState,
    item: &str,
    media: &str,
) -> anyhow::Result<Option<Vec<u8>>> {
    Ok(crate::db::console::video::frame_png(&state.store, item, media).await?)
}

/// Keeps the strip of a matched video upload for each recorded match.
pub async fn keep_for_matches(
    state: &AppState,
    file: Vec<u8>,
    match_ids: &[i64],
) -> anyhow::Result<()> {
    let frames = extract(state, file).await?;
    for id in match_ids {
        store(state, &format!("match:{id}"), "0", &frames).await?;
    }
    Ok(())
}
