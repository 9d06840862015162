//! API errors: a status, a stable machine-readable code and a message a
//! person can act on, as `{"error": {"code": ..., "message": ...}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `not_found`, `bad_media`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413 `too_large`.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// 422 `bad_media`: the upload is not media Bulwark can hash.
    pub fn bad_media(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_media", message)
    }

    /// 503 `busy`.
    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
    }

    /// 500 `internal`; the detail goes to the log, not to the client.
    pub fn internal(err: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {err}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error (see the server log)",
        )
    }
}

impl From<bulwark_service::Error> for ApiError {
    fn from(e: bulwark_service::Error) -> Self {
        use bulwark_service::Kind;
        let status = match e.kind {
            Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Kind::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code, e.message)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal(format!("database: {e}"))
    }
}

impl From<axum::extract::multipart::MultipartError> for ApiError {
    fn from(e: axum::extract::multipart::MultipartError) -> Self {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_upload"
        };
        ApiError::new(e.status(), code, e.body_text())
    }
}

pub use bulwark_service::error::{SNIPPET_CHARS, snippet};

/// Longest error message sent to a client.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// What a client sees of a message: server temporary paths replaced, and at
/// most [`MAX_MESSAGE_CHARS`] characters (parsers quote input; this bounds
/// how much of it comes back).
pub fn client_message(m: &str) -> String {
    let tmp = std::env::temp_dir();
    let tmp = tmp.to_string_lossy();
    let tmp = tmp.trim_end_matches('/');
    let mut m = if tmp.len() > 1 {
        let mut out = String::with_capacity(m.len());
        let mut rest = m;
        while let Some(i) = rest.find(tmp) {
            out.push_str(&rest[..i]);
            out.push_str("<temporary file>");
            let after = &rest[i + tmp.len()..];
            let end = after
                .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ':')
                .unwrap_or(after.len());
            rest = &after[end..];
        }
        out.push_str(rest);
        out
    } else {
        m.to_string()
    };
    if m.chars().count() > MAX_MESSAGE_CHARS {
        m = m.chars().take(MAX_MESSAGE_CHARS - 1).collect();
        m.push('…');
    }
    m
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": client_message(&self.message)}});
        (self.status, axum::Json(body)).into_response()
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_bounded_and_hide_temporary_paths() {
        let long = "x".repeat(10_000);
        assert_eq!(snippet(&long).chars().count(), SNIPPET_CHARS + 1);
        assert_eq!(snippet("short"), "short");
        let m = client_message(&format!("bad {long}"));
        assert_eq!(m.chars().count(), MAX_MESSAGE_CHARS);
        let tmp = std::env::temp_dir().join("bulwark-upload-123.mp4");
        let m = client_message(&format!("cannot hash {}: damaged", tmp.display()));
        assert!(!m.contains(&*std::env::temp_dir().to_string_lossy()), "{m}");
        assert!(m.contains("<temporary file>: damaged"), "{m}");
    }
}
