//! CORS for the Web UI, which calls the server from the browser: the one
//! place CORS answers come from, for preflights and actual requests alike.
//!
//! The rules are tower-http's `CorsLayer` (an allow-list of exact origins
//! echoed back, never `*` with credentials; preflights answered for the
//! headers the UI and CLI send). The layer is run once per configured
//! origin at start-up and its answers kept, so a request costs one look-up.
//! A request from an origin that is not allowed (or without one) gets only
//! the layer's `Vary` headers: no `Allow-Credentials`, methods or headers
//! that would tell a foreign page what it may send.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
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

/// Headers added to an answer.
type HeaderList = Vec<(HeaderName, HeaderValue)>;

/// The answers of one allowed origin (or of every origin, with `*`).
#[derive(Debug)]
struct Answers {
    actual: HeaderList,
    preflight: HeaderList,
}

/// The CORS answers of a configuration, worked out at start-up.
#[derive(Debug)]
pub(crate) struct Cors {
    /// Exact allowed origins and their answers.
    allowed: Vec<(HeaderValue, Answers)>,
    /// With `*`: the answers for every origin.
    any: Option<Answers>,
    /// For an origin that is not allowed, or none: `Vary` only.
    refused: HeaderList,
}

impl Cors {
    /// The answers for `config`.
    pub(crate) fn new(config: &CorsConfig) -> Result<Self, InvalidCorsValue> {
        let layer = layer(config)?;
        let answers = |origin: &HeaderValue| Answers {
            actual: headers_added(&layer, Method::POST, Some(origin)),
            preflight: headers_added(&layer, Method::OPTIONS, Some(origin)),
        };
        let refused: HeaderList = headers_added(&layer, Method::POST, None)
            .into_iter()
            .filter(|(name, _)| name == header::VARY)
            .collect();
        match allowed_origins(config)? {
            None => Ok(Self {
                allowed: Vec::new(),
                any: Some(answers(&HeaderValue::from_static("https://any.invalid"))),
                refused,
            }),
            Some(origins) => Ok(Self {
                allowed: origins
                    .into_iter()
                    .map(|origin| {
                        let found = answers(&origin);
                        (origin, found)
                    })
                    .collect(),
                any: None,
                refused,
            }),
        }
    }

    fn answers(&self, origin: Option<&HeaderValue>) -> Option<&Answers> {
        let origin = origin?;
        self.any.as_ref().or_else(|| {
            self.allowed
                .iter()
                .find(|(allowed, _)| allowed == origin)
                .map(|(_, answers)| answers)
        })
    }

    /// Headers to add to the answer of an actual request from `origin`.
    pub(crate) fn actual(&self, origin: Option<&HeaderValue>) -> &[(HeaderName, HeaderValue)] {
        self.answers(origin).map_or(&self.refused, |a| &a.actual)
    }

    /// Headers of the answer to a preflight from `origin`.
    pub(crate) fn preflight(&self, origin: Option<&HeaderValue>) -> &[(HeaderName, HeaderValue)] {
        self.answers(origin).map_or(&self.refused, |a| &a.preflight)
    }
}

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

/// The CORS layer for `config`: the rules the answers come from.
fn layer(config: &CorsConfig) -> Result<CorsLayer, InvalidCorsValue> {
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

/// The headers `layer` puts on the answer to a `method` request (a
/// preflight for `OPTIONS`) from `origin`.
fn headers_added(layer: &CorsLayer, method: Method, origin: Option<&HeaderValue>) -> HeaderList {
    use std::future::Future as _;
    use tower::{Layer as _, Service as _};

    let mut service = layer.layer(tower::service_fn(|_: axum::http::Request<()>| {
        std::future::ready(Ok::<_, std::convert::Infallible>(
            axum::http::Response::new(()),
        ))
    }));
    let mut request = axum::http::Request::new(());
    if method == Method::OPTIONS {
        request.headers_mut().insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
    }
    *request.method_mut() = method;
    if let Some(origin) = origin {
        request.headers_mut().insert(header::ORIGIN, origin.clone());
    }
    let mut answer = std::pin::pin!(service.call(request));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match answer.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Ok(response)) => response
            .headers()
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
        // The layer answers at once (its inner service is ready at once).
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(origins: &[&str], credentials: bool) -> CorsConfig {
        CorsConfig {
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            allow_credentials: credentials,
            ..CorsConfig::default()
        }
    }

    fn names(headers: &[(HeaderName, HeaderValue)]) -> Vec<&str> {
        headers.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn allowed_origins_get_the_layers_answers() {
        for cfg in [
            config(&["http://localhost:8233", "https://ui.example.com"], false),
            config(&["http://localhost:8233"], true),
        ] {
            let cors = Cors::new(&cfg).unwrap();
            let origin = HeaderValue::from_static("http://localhost:8233");
            let layer = layer(&cfg).unwrap();
            assert_eq!(
                cors.actual(Some(&origin)),
                headers_added(&layer, Method::POST, Some(&origin)).as_slice()
            );
            assert_eq!(
                cors.preflight(Some(&origin)),
                headers_added(&layer, Method::OPTIONS, Some(&origin)).as_slice()
            );
            assert!(names(cors.preflight(Some(&origin))).contains(&"access-control-allow-methods"));
        }
    }

    #[test]
    fn other_origins_get_vary_and_nothing_else() {
        let cors = Cors::new(&config(&["http://localhost:8233"], true)).unwrap();
        let other = HeaderValue::from_static("https://evil.example.com");
        let almost = HeaderValue::from_static("http://localhost:8233/");
        for origin in [Some(&other), Some(&almost), None] {
            for headers in [cors.actual(origin), cors.preflight(origin)] {
                assert!(!headers.is_empty(), "Vary is sent");
                assert!(
                    headers.iter().all(|(n, _)| n == header::VARY),
                    "{origin:?}: {:?}",
                    names(headers)
                );
            }
        }
    }

    #[test]
    fn any_origin_gets_the_wildcard() {
        let cors = Cors::new(&config(&["*"], false)).unwrap();
        let origin = HeaderValue::from_static("https://anything.example.com");
        let allow = |headers: &[(HeaderName, HeaderValue)]| {
            headers
                .iter()
                .find(|(n, _)| n == header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            allow(cors.actual(Some(&origin))),
            Some(HeaderValue::from_static("*"))
        );
        assert_eq!(
            allow(cors.preflight(Some(&origin))),
            Some(HeaderValue::from_static("*"))
        );
    }
}
