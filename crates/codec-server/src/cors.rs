//! CORS for the Web UI, which calls the server from the browser.
//!
//! Built on tower-http's `CorsLayer`: an allow-list of exact origins (the
//! answer echoes the caller's origin, never `*` when credentials are on),
//! preflights answered for the headers the UI and CLI send, and no CORS
//! headers at all for origins that are not allowed.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CorsConfig;

/// Headers the Web UI and CLI send.
const STANDARD_HEADERS: [&str; 4] = [
    "content-type",
    "x-namespace",
    "authorization",
    "authorization-extras",
];

/// A configured origin or header that is not valid in an HTTP header.
#[derive(Debug, thiserror::Error)]
#[error("cors value `{0}` is not a valid header value")]
pub struct InvalidCorsValue(pub String);

/// The CORS layer for `config`.
pub(crate) fn layer(config: &CorsConfig) -> Result<CorsLayer, InvalidCorsValue> {
    let allow_origin = if config.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let origins = config
            .allowed_origins
            .iter()
            .map(|o| HeaderValue::from_str(o).map_err(|_| InvalidCorsValue(o.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(origins)
    };
    let headers = STANDARD_HEADERS
        .iter()
        .map(|h| (*h).to_owned())
        .chain(
            config
                .extra_allowed_headers
                .iter()
                .map(|h| h.to_ascii_lowercase()),
        )
        .map(|h| HeaderName::from_bytes(h.as_bytes()).map_err(|_| InvalidCorsValue(h.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
        .allow_headers(headers)
        .allow_credentials(config.allow_credentials)
        .max_age(Duration::from_secs(600)))
}
