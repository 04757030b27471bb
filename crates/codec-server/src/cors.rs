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

/// The configured origins as header values; `None` when `*` allows any.
fn allowed_origins(config: &CorsConfig) -> Result<Option<Vec<HeaderValue>>, InvalidCorsValue> {
    if config.allowed_origins.iter().any(|o| o == "*") {
        return Ok(None);
    }
    config
        .allowed_origins
        .iter()
        .map(|o| HeaderValue::from_str(o).map_err(|_| InvalidCorsValue(o.clone())))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The CORS layer for `config`.
pub(crate) fn layer(config: &CorsConfig) -> Result<CorsLayer, InvalidCorsValue> {
    let allow_origin = match allowed_origins(config)? {
        None => AllowOrigin::any(),
        Some(origins) => AllowOrigin::list(origins),
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

/// Headers added to an answer.
type HeaderList = Vec<(HeaderName, HeaderValue)>;

/// What the CORS layer adds to an actual (not preflight) request, worked
/// out once at start-up by running the layer itself: for no `Origin` and
/// for each configured origin. The codec routes answer many small requests,
/// and building these headers per request was a tenth of their work.
///
/// The layer adds the same headers for any origin that is not configured as
/// for no origin (an allow-list answers only listed origins; `*` answers
/// every request alike), so those share one entry. A test compares these
/// answers with the layer's for allowed, unknown and absent origins.
#[derive(Debug)]
pub(crate) struct CorsAnswers {
    without: HeaderList,
    allowed: Vec<(HeaderValue, HeaderList)>,
}

impl CorsAnswers {
    /// The answers of the layer for `config`; `None` if the layer does not
    /// answer at once (it always does for the rules `layer` builds).
    pub(crate) fn new(config: &CorsConfig) -> Result<Option<Self>, InvalidCorsValue> {
        let layer = layer(config)?;
        let Some(without) = headers_added(&layer, None) else {
            return Ok(None);
        };
        // With `*` every origin gets the answer for none.
        let mut allowed = Vec::new();
        for value in allowed_origins(config)?.unwrap_or_default() {
            let Some(headers) = headers_added(&layer, Some(&value)) else {
                return Ok(None);
            };
            allowed.push((value, headers));
        }
        Ok(Some(Self { without, allowed }))
    }

    /// The headers to add to the answer for a request from `origin`.
    pub(crate) fn for_origin(&self, origin: Option<&HeaderValue>) -> &[(HeaderName, HeaderValue)] {
        origin
            .and_then(|origin| self.allowed.iter().find(|(o, _)| o == origin))
            .map_or(&self.without, |(_, headers)| headers)
    }
}

/// The headers `layer` adds to the answer of a `POST` from `origin`.
fn headers_added(layer: &CorsLayer, origin: Option<&HeaderValue>) -> Option<HeaderList> {
    use std::future::Future as _;
    use tower::{Layer as _, Service as _};

    let mut service = layer.layer(tower::service_fn(|_: axum::http::Request<()>| {
        std::future::ready(Ok::<_, std::convert::Infallible>(
            axum::http::Response::new(()),
        ))
    }));
    let mut request = axum::http::Request::new(());
    *request.method_mut() = Method::POST;
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert(axum::http::header::ORIGIN, origin.clone());
    }
    let mut answer = std::pin::pin!(service.call(request));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match answer.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Ok(response)) => Some(
            response
                .headers()
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The full answer headers of the layer for a `POST` from `origin`.
    fn layer_headers(config: &CorsConfig, origin: Option<&str>) -> HeaderList {
        let origin = origin.map(|o| HeaderValue::from_str(o).unwrap());
        headers_added(&layer(config).unwrap(), origin.as_ref()).unwrap()
    }

    fn config(origins: &[&str], credentials: bool) -> CorsConfig {
        CorsConfig {
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            allow_credentials: credentials,
            ..CorsConfig::default()
        }
    }

    #[test]
    fn precomputed_answers_are_the_layers() {
        let configs = [
            config(&["http://localhost:8233", "https://ui.example.com"], false),
            config(&["http://localhost:8233"], true),
            config(&["*"], false),
            config(&[], false),
        ];
        let origins = [
            None,
            Some("http://localhost:8233"),
            Some("https://ui.example.com"),
            Some("https://evil.example.com"),
            Some("http://localhost:8233/"),
        ];
        for config in &configs {
            let answers = CorsAnswers::new(config).unwrap().unwrap();
            for origin in origins {
                let value = origin.map(|o| HeaderValue::from_str(o).unwrap());
                assert_eq!(
                    answers.for_origin(value.as_ref()),
                    layer_headers(config, origin).as_slice(),
                    "{config:?} from {origin:?}"
                );
            }
        }
    }

    #[test]
    fn allowed_origins_are_echoed_and_others_are_not() {
        let answers = CorsAnswers::new(&config(&["http://localhost:8233"], false))
            .unwrap()
            .unwrap();
        let allowed = HeaderValue::from_static("http://localhost:8233");
        let other = HeaderValue::from_static("https://evil.example.com");
        let origin_of = |headers: &[(HeaderName, HeaderValue)]| {
            headers
                .iter()
                .find(|(n, _)| n == axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(origin_of(answers.for_origin(Some(&allowed))), Some(allowed));
        assert_eq!(origin_of(answers.for_origin(Some(&other))), None);
        assert_eq!(origin_of(answers.for_origin(None)), None);
        assert!(
            answers
                .for_origin(None)
                .iter()
                .any(|(n, _)| n == axum::http::header::VARY),
            "Vary is sent even without an origin, as the layer does"
        );
    }
}
