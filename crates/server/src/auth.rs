//! API keys and roles over HTTP: the caller of a request, from its
//! `Authorization: Bearer KEY` header. Keys, roles and their verification are
//! [`bulwark_service::keys`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::AppState;
use crate::error::ApiError;

pub use bulwark_service::keys::{
    Caller, KeyCache, KeyInfo, NewKey, Role, bootstrap_admin, create_key, create_key_in, key_id_of,
    list_keys, revoke_key,
};

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this API needs a key: send `Authorization: Bearer KEY` (see `bulwark keys create`)",
                )
            })?;
        let key = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the Authorization header must be `Bearer KEY`",
                )
            })?;
        Ok(state.keys.verify(&state.store, key.trim()).await?)
    }
}
