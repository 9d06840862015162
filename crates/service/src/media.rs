//! Hashing uploads off the async runtime, in a bounded pool.

use std::sync::Arc;
use std::time::Duration;

use md5::Md5;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::error::{Error, Kind};

/// What an upload hashed to.
#[derive(Debug, Clone)]
pub enum Hashed {
    /// An image.
    Photo {
        /// PDQ hash.
        pdq: bulwark_pdq::PdqHash,
        /// PDQ quality.
        quality: u32,
        /// MD5 of the bytes.
        md5: [u8; 16],
        /// SHA-256 of the bytes.
        sha256: [u8; 32],
        /// Extra PDQ hashes of the same image (content region inside detected
        /// framing, crops, small rotations): the kinds the call asked for
        /// ([`Pool::hash`]: what matching needs; [`Pool::hash_for_bank`]:
        /// also what banks store).
        extras: Vec<bulwark_pdq::KindHash>,
    },
    /// A video.
    Video {
        /// vPDQ frame hashes.
        frames: Vec<bulwark_vpdq::FrameHash>,
        /// Extra hashes of its frames, (frame number, hash): the `region`
        /// hash (content inside letterbox, caption or screenshot framing),
        /// when the kinds the call asked for include it and framing was
        /// found; from the same decode as the plain frames, which are
        /// bit-exact with those of a call without extras.
        frame_extras: Vec<(u64, bulwark_pdq::KindHash)>,
        /// MD5 of the bytes.
        md5: [u8; 16],
        /// SHA-256 of the bytes.
        sha256: [u8; 32],
    },
}

impl Hashed {
    /// SHA-256 of the file.
    pub fn sha256(&self) -> [u8; 32] {
        match self {
            Hashed::Photo { sha256, .. } | Hashed::Video { sha256, .. } => *sha256,
        }
    }

    /// [`Hashed::to_json`] without the video's frame lines: what a match or a
    /// report shows of the query.
    pub fn summary_json(&self) -> serde_json::Value {
        let mut j = self.to_json();
        if let Some(o) = j.as_object_mut() {
            o.remove("vpdq");
        }
        j
    }

    /// The JSON the API answers with.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Hashed::Photo {
                pdq,
                quality,
                md5,
                sha256,
                extras,
            } => serde_json::json!({
                "kind": "photo",
                "pdq": pdq.to_string(),
                "quality": quality,
                "md5": hex::encode(md5),
                "sha256": hex::encode(sha256),
                "extras": extras.iter().map(|e| serde_json::json!({
                    "hash_kind": e.kind.as_str(),
                    "pdq": e.hash.to_string(),
                    "quality": e.quality,
                })).collect::<Vec<_>>(),
            }),
            Hashed::Video {
                frames,
                md5,
                sha256,
                ..
            } => serde_json::json!({
                "kind": "video",
                "md5": hex::encode(md5),
                "sha256": hex::encode(sha256),
                "frames": frames.len(),
                "vpdq": frames.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            }),
        }
    }
}

/// The decode pool: at most `workers` decodes at once, each on a blocking
/// thread; at most `uploads` request bodies held in memory; and at most
/// `megapixels` image pixels (in millions) decoding at once, so that a few
/// huge images cannot take the memory that many small ones would share
/// (hashing holds about 11 bytes per pixel: a 49-megapixel PNG ~540 MB).
#[derive(Clone)]
pub struct Pool {
    workers: Arc<Semaphore>,
    uploads: Arc<Semaphore>,
    pixels: Arc<Semaphore>,
    megapixels: u32,
    wait: Duration,
    limits: bulwark_pdq::Limits,
    video: bulwark_vpdq::Options,
    /// Extra kinds banks store ([`PoolOptions::extra_hashes`]).
    bank_kinds: bulwark_pdq::KindSet,
}

/// What a [`Pool`] allows (the service's settings: bulwark-server's `Config`).
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Decodes at once, each on a blocking thread.
    pub workers: usize,
    /// Request bodies held in memory at once.
    pub max_uploads_in_flight: usize,
    /// Image pixels, in millions, decoding at once.
    pub decode_megapixels: u32,
    /// How long a request waits for room before a 503.
    pub queue_timeout: Duration,
    /// Seconds between sampled video frames (0: every frame).
    pub video_every_seconds: f64,
    /// The longest one video may take to decode.
    pub video_timeout: Duration,
    /// Extra kinds banks store.
    pub extra_hashes: bulwark_pdq::KindSet,
}

impl Pool {
    /// A pool.
    pub fn new(cfg: &PoolOptions) -> Pool {
        let mut video = bulwark_vpdq::Options::default();
        video.every_seconds = (cfg.video_every_seconds > 0.0).then_some(cfg.video_every_seconds);
        video.timeout = cfg.video_timeout;
        video.max_frames = 100_000;
        Pool {
            workers: Arc::new(Semaphore::new(cfg.workers.max(1))),
            uploads: Arc::new(Semaphore::new(cfg.max_uploads_in_flight.max(1))),
            pixels: Arc::new(Semaphore::new(cfg.decode_megapixels.max(1) as usize)),
            megapixels: cfg.decode_megapixels.max(1),
            wait: cfg.queue_timeout,
            limits: bulwark_pdq::Limits::default(),
            video,
            bank_kinds: cfg.extra_hashes,
        }
    }

    /// How videos are decoded (ffmpeg, limits, timeout): the reviewer
    /// console's frame strips use the same.
    pub fn video_options(&self) -> &bulwark_vpdq::Options {
        &self.video
    }

    /// The extra hash kinds banks store.
    pub fn bank_kinds(&self) -> bulwark_pdq::KindSet {
        self.bank_kinds
    }

    /// The extra kinds a query computes: what the "both sides" pairing
    /// compares with the banked kinds.
    pub fn query_kinds(&self) -> bulwark_pdq::KindSet {
        self.bank_kinds.query_side()
    }

    /// Waits for room to hold one more upload.
    pub async fn upload_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
        tokio::time::timeout(self.wait, Arc::clone(&self.uploads).acquire_owned())
            .await
            .map_err(|_| Error::busy("too many uploads in progress; retry later"))?
            .map_err(Error::internal)
    }

    /// Hashes an uploaded file (image or video) in the pool, with the extra
    /// hashes matching needs ([`Pool::query_kinds`]).
    pub async fn hash(&self, bytes: bytes::Bytes) -> Result<Hashed, Error> {
        self.hash_kinds(bytes, self.query_kinds()).await
    }

    /// [`Pool::hash`] of a file to bank: also the extras banks store (and
    /// those a query needs, so one hash serves a caller that both banks and
    /// matches, as HMA's hashing path does).
    pub async fn hash_for_bank(&self, bytes: bytes::Bytes) -> Result<Hashed, Error> {
        let kinds = self
            .bank_kinds
            .iter()
            .chain(self.query_kinds().iter())
            .collect();
        self.hash_kinds(bytes, kinds).await
    }

    /// [`Pool::hash`] for an answer that shows the hashes (`/v1/hash`): an
    /// image's extras, but a video's frames without their `region` hashes,
    /// which only matching an uploaded video uses (they cost a framing
    /// search per frame and the answer has no place for them).
    pub async fn hash_to_show(&self, bytes: bytes::Bytes) -> Result<Hashed, Error> {
        self.hash_with(bytes, self.query_kinds(), bulwark_pdq::KindSet::NONE)
            .await
    }

    /// Hashes an uploaded file with the extra PDQ hashes of `kinds` (images;
    /// a video's frames get those of `kinds` among [`FRAME_KINDS`]).
    pub async fn hash_kinds(
        &self,
        bytes: bytes::Bytes,
        kinds: bulwark_pdq::KindSet,
    ) -> Result<Hashed, Error> {
        self.hash_with(bytes, kinds, kinds).await
    }

    async fn hash_with(
        &self,
        bytes: bytes::Bytes,
        kinds: bulwark_pdq::KindSet,
        frame_kinds: bulwark_pdq::KindSet,
    ) -> Result<Hashed, Error> {
        let slot = self.decode_slot(&bytes).await?;
        let limits = self.limits;
        let video = self.video.clone();
        // The slot moves into the blocking task: a client that disconnects
        // does not free it while the decode goes on.
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            hash_file(&bytes, &limits, &video, kinds, frame_kinds)
        })
        .await
        .map_err(Error::internal)?
    }

    /// What decoding `bytes` takes from the pixel budget, in megapixels
    /// (rounded up; at least 1, at most the whole budget, so one image the
    /// size limits allow can always run alone). Read from the header; an
    /// image over the size limits, refused before its pixels are allocated,
    /// and a video (whose frames are small) take 1.
    pub fn pixel_cost(&self, bytes: &[u8]) -> u32 {
        let Some((w, h)) = bulwark_pdq::dimensions(bytes) else {
            return 1;
        };
        let px = u64::from(w) * u64::from(h);
        if px > self.limits.max_pixels
            || w > self.limits.max_dimension
            || h > self.limits.max_dimension
        {
            return 1;
        }
        px.div_ceil(1_000_000).clamp(1, u64::from(self.megapixels)) as u32
    }

    /// Waits (up to the queue timeout) for the pixel budget `bytes` needs
    /// and then for a worker; the budget is taken first, so a huge image
    /// waiting for room never holds a worker that small images could use.
    pub async fn decode_slot(&self, bytes: &[u8]) -> Result<DecodeSlot, Error> {
        let cost = self.pixel_cost(bytes);
        let (pixels, workers) = (Arc::clone(&self.pixels), Arc::clone(&self.workers));
        let slot = async move {
            let pixels = pixels
                .acquire_many_owned(cost)
                .await
                .map_err(Error::internal)?;
            let worker = workers.acquire_owned().await.map_err(Error::internal)?;
            Ok::<_, Error>(DecodeSlot {
                _pixels: pixels,
                _worker: worker,
            })
        };
        tokio::time::timeout(self.wait, slot).await.map_err(|_| {
            Error::busy(format!(
                "every decoder is busy (this image needs {cost} of the {} megapixels \
                 decoded at once); retry later",
                self.megapixels
            ))
        })?
    }
}

/// A worker and the pixel budget one decode holds; both return when dropped.
pub struct DecodeSlot {
    _pixels: tokio::sync::OwnedSemaphorePermit,
    _worker: tokio::sync::OwnedSemaphorePermit,
}

/// The extra kinds a video's frames can carry: `region` (framing: letterbox,
/// caption, screenshot) and `centre-90` (5 % crops), each when the caller's
/// kinds hold it. Corners and rotations of every frame would multiply the
/// stored rows and the hashing time for edits that the frame-level rule
/// already tolerates or that were not measured to help (docs/VPDQ.md).
pub const FRAME_KINDS: bulwark_pdq::KindSet = bulwark_pdq::KindSet::of(&[
    bulwark_pdq::HashKind::Region,
    bulwark_pdq::HashKind::Centre90,
]);

fn hash_file(
    bytes: &[u8],
    limits: &bulwark_pdq::Limits,
    video: &bulwark_vpdq::Options,
    kinds: bulwark_pdq::KindSet,
    frame_kinds: bulwark_pdq::KindSet,
) -> Result<Hashed, Error> {
    if bytes.is_empty() {
        return Err(Error::bad_media("the uploaded file is empty"));
    }
    let md5: [u8; 16] = Md5::digest(bytes).into();
    let sha256: [u8; 32] = Sha256::digest(bytes).into();
    if bulwark_pdq::sniff(bytes).is_some() {
        let m =
            bulwark_pdq::MultiHash::of_bytes(bytes, bulwark_pdq::Mode::default(), limits, kinds)
                .map_err(|e| match e {
                    bulwark_pdq::Error::LimitExceeded(_) => {
                        Error::new(Kind::TooLarge, "too_large", e.to_string())
                    }
                    e => Error::bad_media(format!("cannot hash this image: {e}")),
                })?;
        let h = m.full();
        return Ok(Hashed::Photo {
            pdq: h.hash,
            quality: h.quality,
            md5,
            sha256,
            extras: m.extras().to_vec(),
        });
    }
    if let Some(brand) = heif_brand(bytes) {
        return Err(Error::bad_media(format!(
            "HEIC/HEIF/AVIF images (brand {brand:?}) are not supported: convert to JPEG or PNG \
             first (e.g. `heif-convert in.heic out.jpg`)"
        )));
    }
    if bulwark_vpdq::sniff(&bytes[..bytes.len().min(4096)]) {
        let video_error = |e: bulwark_vpdq::Error| match e {
            // Images need nothing installed; video needs ffmpeg on the server.
            bulwark_vpdq::Error::ToolMissing { tool, .. } => Error::new(
                Kind::Unprocessable,
                "video_unsupported",
                format!(
                    "this server cannot hash videos: {tool} is not installed; \
                         install ffmpeg on the server (e.g. `apt-get install ffmpeg`) and \
                         restart it (images work without it)"
                ),
            ),
            e => Error::bad_media(format!("cannot hash this video: {e}")),
        };
        let frame_kinds: bulwark_pdq::KindSet = frame_kinds
            .iter()
            .filter(|k| FRAME_KINDS.contains(*k))
            .collect();
        let (frames, frame_extras) = if !frame_kinds.is_empty() {
            let fx = bulwark_vpdq::hash_video_bytes_extras(bytes, video, frame_kinds)
                .map_err(video_error)?;
            let mut frames = Vec::with_capacity(fx.len());
            let mut extras = Vec::new();
            for f in fx {
                extras.extend(
                    f.extras
                        .into_iter()
                        .filter(|e| frame_kinds.contains(e.kind))
                        .map(|e| (f.frame.frame, e)),
                );
                frames.push(f.frame);
            }
            (frames, extras)
        } else {
            (
                bulwark_vpdq::hash_video_bytes(bytes, video).map_err(video_error)?,
                Vec::new(),
            )
        };
        if frames.is_empty() {
            return Err(Error::bad_media("the video has no frames"));
        }
        return Ok(Hashed::Video {
            frames,
            frame_extras,
            md5,
            sha256,
        });
    }
    Err(Error::bad_media(
        "not an image or video Bulwark can read (JPEG, PNG, GIF, WebP, BMP, TIFF; MP4, MOV, WebM, MKV, AVI)",
    ))
}

/// The major brand of an ISO-BMFF file that holds a still image (HEIC,
/// HEIF, AVIF): these share MP4's `ftyp` box, so without this check they
/// would be sent to ffmpeg as videos and fail with a confusing message.
fn heif_brand(bytes: &[u8]) -> Option<&str> {
    if bytes.len() < 12 || &bytes[4..8] != b"ftyp" {
        return None;
    }
    let brand = std::str::from_utf8(&bytes[8..12]).ok()?;
    [
        "heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1", "avif", "avis",
    ]
    .contains(&brand)
    .then_some(brand)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A HEIC still (an `ftyp` box like MP4's) gets an accurate message, not
    /// a video error from ffmpeg.
    #[test]
    fn heic_gets_an_accurate_message() {
        let mut heic = vec![0, 0, 0, 24];
        heic.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
        heic.resize(4096, 0);
        let e = match hash_file(
            &heic,
            &bulwark_pdq::Limits::default(),
            &bulwark_vpdq::Options::default(),
            bulwark_pdq::KindSet::ALL,
            bulwark_pdq::KindSet::ALL,
        ) {
            Err(e) => e,
            Ok(_) => panic!("hashed a fake HEIC"),
        };
        assert_eq!(e.code, "bad_media");
        assert!(
            e.message.contains("HEIC") && e.message.contains("convert"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("/tmp"), "{}", e.message);
    }

    /// A video upload on a server without ffmpeg is a clear 422 that says to
    /// install it; an image on the same server still hashes.
    #[test]
    fn video_without_ffmpeg_is_a_clear_422_and_images_still_work() {
        // An MP4 header: the sniffer sees a video, and ffmpeg cannot be run.
        let mut video = vec![0, 0, 0, 24];
        video.extend_from_slice(b"ftypisom\0\0\x02\0isomiso2");
        video.resize(4096, 0);
        assert!(bulwark_vpdq::sniff(&video[..video.len().min(4096)]));
        let mut no_ffmpeg = bulwark_vpdq::Options::default();
        no_ffmpeg.ffmpeg = "/nonexistent/bulwark-test/ffmpeg".into();
        no_ffmpeg.ffprobe = "/nonexistent/bulwark-test/ffprobe".into();
        let limits = bulwark_pdq::Limits::default();
        let e = match hash_file(
            &video,
            &limits,
            &no_ffmpeg,
            bulwark_pdq::KindSet::ALL,
            bulwark_pdq::KindSet::ALL,
        ) {
            Err(e) => e,
            Ok(_) => panic!("hashed a video without ffmpeg"),
        };
        assert_eq!(e.kind, Kind::Unprocessable);
        assert_eq!(e.code, "video_unsupported");
        assert!(e.message.contains("install ffmpeg"), "{}", e.message);

        let rgb: Vec<u8> = (0..64 * 64 * 3).map(|i| (i * 7 % 251) as u8).collect();
        let img = bulwark_pdq::Image {
            width: 64,
            height: 64,
            channels: 3,
            pixels: rgb,
        };
        let jpeg = bulwark_pdq::encode_jpeg(&img, 90).expect("encode");
        assert!(matches!(
            hash_file(
                &jpeg,
                &limits,
                &no_ffmpeg,
                bulwark_pdq::KindSet::ALL,
                bulwark_pdq::KindSet::NONE
            ),
            Ok(Hashed::Photo { .. })
        ));
    }

    /// The bytes a PNG decoder reads before the pixels (signature, IHDR, the
    /// start of IDAT) for a `w`×`h` 8-bit grey image: enough for
    /// [`bulwark_pdq::dimensions`], nothing to decode.
    fn png_head(w: u32, h: u32) -> Vec<u8> {
        fn crc(data: &[u8]) -> u32 {
            let mut c = 0xFFFF_FFFFu32;
            for &b in data {
                c ^= u32::from(b);
                for _ in 0..8 {
                    c = if c & 1 == 1 {
                        0xEDB8_8320 ^ (c >> 1)
                    } else {
                        c >> 1
                    };
                }
            }
            !c
        }
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        out.extend_from_slice(&13u32.to_be_bytes());
        out.extend_from_slice(&ihdr);
        out.extend_from_slice(&crc(&ihdr).to_be_bytes());
        out.extend_from_slice(&16u32.to_be_bytes());
        out.extend_from_slice(b"IDAT");
        out.extend_from_slice(&[0; 20]);
        out
    }

    /// Two 49-megapixel images do not decode at once under a 64-megapixel
    /// budget: the second waits (and gets a 503 when the wait runs out)
    /// while small images still get through; it runs once the first is done.
    #[tokio::test]
    async fn the_pixel_budget_keeps_two_huge_images_apart() {
        let cfg = PoolOptions {
            workers: 4,
            max_uploads_in_flight: 10,
            decode_megapixels: 64,
            queue_timeout: Duration::from_millis(300),
            video_every_seconds: 1.0,
            video_timeout: Duration::from_secs(60),
            extra_hashes: bulwark_pdq::KindSet::BANK_DEFAULT,
        };
        let pool = Pool::new(&cfg);
        let huge = png_head(7000, 7000);
        let small = png_head(640, 480);
        assert_eq!(pool.pixel_cost(&huge), 49);
        assert_eq!(pool.pixel_cost(&small), 1);
        // Over the size limits: refused before allocation, so it costs 1.
        assert_eq!(pool.pixel_cost(&png_head(20_001, 10)), 1);
        assert_eq!(pool.pixel_cost(b"not an image"), 1);

        let first = pool.decode_slot(&huge).await.expect("room for one");
        let e = match pool.decode_slot(&huge).await {
            Err(e) => e,
            Ok(_) => panic!("a second 49-megapixel decode got room"),
        };
        assert_eq!(e.kind, Kind::Busy);
        assert!(
            e.message.contains("49 of the 64 megapixels"),
            "{}",
            e.message
        );
        let smalls: Vec<_> =
            futures_util::future::join_all((0..3).map(|_| pool.decode_slot(&small)))
                .await
                .into_iter()
                .collect::<Result<_, _>>()
                .expect("small images still decode");
        drop(smalls);
        drop(first);
        pool.decode_slot(&huge).await.expect("room again");

        // An image bigger than the whole budget runs alone rather than never.
        let tight = Pool::new(&PoolOptions {
            decode_megapixels: 10,
            ..cfg
        });
        assert_eq!(tight.pixel_cost(&huge), 10);
        let alone = tight.decode_slot(&huge).await.expect("runs alone");
        assert!(tight.decode_slot(&small).await.is_err());
        drop(alone);
    }
}
