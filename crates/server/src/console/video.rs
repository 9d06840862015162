//! Videos as a blurred frame strip: a few evenly spaced frames of a video,
//! grey and at most [`REVEALED_SIDE`] pixels, extracted once and kept. The
//! extraction, its limits and what is kept are
//! `bulwark_service::review::media`; this module gives it the server's
//! settings. The item page shows each frame like an image: blurred, grey,
//! 16 px until revealed one at a time against the daily budget. No
//! `<video>` element is ever sent, so nothing plays.

pub use bulwark_service::review::media::{Frame, REVEALED_SIDE, StripOptions, sample_frames};

use crate::AppState;

/// How this server extracts strips: vPDQ's tools, limits and timeout
/// ([`crate::media::Pool::video_options`]) and `console.video_frames`.
pub fn options(state: &AppState) -> StripOptions {
    StripOptions {
        video: state.media.video_options().clone(),
        frames: state.config.console.video_frames,
    }
}
