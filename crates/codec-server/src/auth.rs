//! Who may call the Codec Server, per namespace.
//!
//! Modes: none; static bearer tokens (stored as SHA-256 hashes, compared in
//! constant time); JWT access tokens verified against the identity
//! provider's JWKS and authorized by a `<namespace>:<read|write|admin>`
//! permissions claim (see [`JwtAuth`]). Decoding needs read permission on the
//! namespace, encoding needs write. Only `Authorization` is read: the
//! `Authorization-Extras` header (the Web UI's id token) is ignored.

mod bearer;
mod jwt;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

pub use self::bearer::{BadTokenHash, BearerTokens, hash_token};
pub use self::jwt::{
    Audience, Clock, InvalidJwksUrl, JwksUrl, JwtAlgorithm, JwtAlgorithms, JwtAuth, JwtSettings,
    NoAlgorithms, NoAudience,
};
use crate::error::ApiError;

/// What the caller wants to do, which decides the permission needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `/decode` (and `/download`): needs read.
    Read,
    /// `/encode`: needs write.
    Write,
}

/// How a namespace authenticates its callers.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum Auth {
    /// Anyone who can reach the server.
    #[default]
    None,
    /// `Authorization: Bearer <token>` with one of these tokens; a token may
    /// be limited to read access.
    Bearer(BearerTokens),
    /// `Authorization: Bearer <JWT>`: a token signed by a key of the
    /// configured JWKS whose permissions claim grants the access.
    Jwt(JwtAuth),
}

impl Auth {
    /// Checks the request's credentials for `access` to `namespace`. Only
    /// JWT auth ever waits: for the JWKS, when the token's key is not cached.
    pub async fn check(
        &self,
        headers: &HeaderMap,
        namespace: &str,
        access: Access,
    ) -> Result<(), ApiError> {
        match self {
            Auth::None => Ok(()),
            Auth::Bearer(tokens) => tokens.check(bearer_token(headers)?, namespace, access),
            Auth::Jwt(jwt) => jwt.check(bearer_token(headers)?, namespace, access).await,
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthorized(
            "this namespace needs credentials: send `Authorization: Bearer <token>` \
             (temporal CLI: --codec-auth \"Bearer <token>\")"
                .to_owned(),
        )
    })?;
    let value = value.to_str().map_err(|_| {
        ApiError::Unauthorized("the Authorization header is not valid text".to_owned())
    })?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized(
            "the Authorization header must be `Bearer <token>`".to_owned(),
        ));
    }
    Ok(token.trim())
}
