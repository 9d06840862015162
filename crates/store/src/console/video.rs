//! Video frame strips kept in `console_frames`.

use sqlx::Row;

use crate::Store;

/// Keeps one frame (or why there are none) unless it is kept already.
pub async fn insert_frame(
    store: &Store,
    item: &str,
    media: &str,
    at_ms: i64,
    png: Option<&[u8]>,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(&store.sql(
        "INSERT INTO console_frames (item, media, at_ms, png, error) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT DO NOTHING",
    ))
    .bind(item)
    .bind(media)
    .bind(at_ms)
    .bind(png)
    .bind(error)
    .execute(&store.pool)
    .await?;
    Ok(())
}

/// A kept frame, without its PNG.
#[derive(Debug, Clone)]
pub struct FrameRow {
    /// Its media id (`base` or `base.fN`).
    pub media: String,
    /// Its time in the video (ms).
    pub at_ms: i64,
    /// Why there are no frames, when there are none.
    pub error: Option<String>,
}

/// The frames kept for video `base` of `item`, in time order.
pub async fn frames(store: &Store, item: &str, base: &str) -> Result<Vec<FrameRow>, sqlx::Error> {
    sqlx::query(&store.sql(
        "SELECT media, at_ms, error FROM console_frames WHERE item = ? AND (media = ? OR media LIKE ?) \
         ORDER BY at_ms, media",
    ))
    .bind(item)
    .bind(base)
    .bind(format!("{base}.f%"))
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(FrameRow {
            media: r.try_get("media")?,
            at_ms: r.try_get("at_ms")?,
            error: r.try_get("error")?,
        })
    })
    .collect()
}

/// A kept frame's PNG.
pub async fn frame_png(
    store: &Store,
    item: &str,
    media: &str,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    Ok(
        sqlx::query(&store.sql("SELECT png FROM console_frames WHERE item = ? AND media = ?"))
            .bind(item)
            .bind(media)
            .fetch_optional(&store.pool)
            .await?
            .map(|r| r.try_get::<Option<Vec<u8>>, _>("png"))
            .transpose()?
            .flatten(),
    )
}
