//! The service's errors: what went wrong in terms a caller can act on,
//! without HTTP. The HTTP layer (bulwark-server's `ApiError`) maps each
//! [`Kind`] to a status and answers `{"error": {"code", "message"}}`.

/// What kind of failure, which decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request is malformed or asks for something invalid (400).
    BadRequest,
    /// No valid credentials (401).
    Unauthorized,
    /// The caller may not do this (403).
    Forbidden,
    /// The named thing does not exist (404).
    NotFound,
    /// It conflicts with the current state (409).
    Conflict,
    /// Over a size or pixel limit (413).
    TooLarge,
    /// Not media this service can hash, or a valid request it cannot
    /// process (422).
    Unprocessable,
    /// Too many requests from one client; slow down (429).
    RateLimited,
    /// Too much work in flight; retry later (503).
    Busy,
    /// A fault of the service; the detail is logged, not returned (500).
    Internal,
}

/// A failure of a service operation.
#[derive(Debug)]
pub struct Error {
    /// The kind, which decides the HTTP status.
    pub kind: Kind,
    /// A stable machine-readable code, e.g. `not_found`, `bad_media`.
    pub code: &'static str,
    /// What a person can act on.
    pub message: String,
}

/// The result of a service operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error.
    pub fn new(kind: Kind, code: &'static str, message: impl Into<String>) -> Error {
        Error {
            kind,
            code,
            message: message.into(),
        }
    }

    /// `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::new(Kind::BadRequest, "bad_request", message)
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(Kind::NotFound, "not_found", message)
    }

    /// `conflict`.
    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(Kind::Conflict, "conflict", message)
    }

    /// `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Error {
        Error::new(Kind::Forbidden, "forbidden", message)
    }

    /// `too_large`.
    pub fn too_large(message: impl Into<String>) -> Error {
        Error::new(Kind::TooLarge, "too_large", message)
    }

    /// `bad_media`: not media Bulwark can hash.
    pub fn bad_media(message: impl Into<String>) -> Error {
        Error::new(Kind::Unprocessable, "bad_media", message)
    }

    /// `busy`.
    pub fn busy(message: impl Into<String>) -> Error {
        Error::new(Kind::Busy, "busy", message)
    }

    /// `internal`; the detail goes to the log, not to the caller.
    pub fn internal(err: impl std::fmt::Display) -> Error {
        tracing::error!("internal error: {err}");
        Error::new(
            Kind::Internal,
            "internal",
            "internal error (see the server log)",
        )
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<sqlx::Error> for Error {
    /// A lock PostgreSQL gave up waiting for (a lock timeout, a deadlock)
    /// is [`Kind::Busy`]: the same request may well succeed when retried.
    /// Anything else is internal.
    fn from(e: sqlx::Error) -> Self {
        if bulwark_store::imports::is_lock_conflict(&e) {
            tracing::warn!("database: {e}");
            return Error::busy("the database gave up waiting for a lock; retry");
        }
        Error::internal(format!("database: {e}"))
    }
}

/// Longest input excerpt an error message quotes.
pub const SNIPPET_CHARS: usize = 40;

/// At most [`SNIPPET_CHARS`] characters of client input, for quoting in an
/// error message (longer input is cut with "…").
pub fn snippet(s: &str) -> String {
    let mut out: String = s.chars().take(SNIPPET_CHARS).collect();
    if s.chars().nth(SNIPPET_CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    /// A database error with a SQLSTATE, as PostgreSQL's driver reports one.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl std::fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl std::error::Error for Sqlstate {}

    impl sqlx::error::DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            "test"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    /// A lock timeout (55P03) or a deadlock (40P01) is `busy` (503, retry);
    /// any other database error stays internal (500).
    #[test]
    fn lock_conflicts_are_busy() {
        let of = |code| Error::from(sqlx::Error::Database(Box::new(Sqlstate(code))));
        for code in ["55P03", "40P01"] {
            let e = of(code);
            assert_eq!((e.kind, e.code), (Kind::Busy, "busy"), "{code}");
        }
        for code in ["23505", "57014", "5"] {
            assert_eq!(of(code).kind, Kind::Internal, "{code}");
        }
    }
}
