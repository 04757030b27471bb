//! [`RemotePayloadCodec`]: a [`PayloadCodec`] that calls a Codec Server over HTTP, as the Temporal
//! CLI does: one `POST <endpoint>/encode|decode` per batch with
//! `X-Namespace`, optional `Authorization` and extra headers; the answer
//! must be 200 with exactly as many payloads as were sent.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use payload_converter::{BoxFuture, CodecErrorKind, PayloadCodec, PayloadCodecError};
use payload_proto::temporal::api::common::v1::{Payload, Payloads};

/// Largest answer accepted from the server.
const MAX_ANSWER_BYTES: usize = 256 * 1024 * 1024;

/// Calling a remote Codec Server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteCodecError {
    /// The endpoint is not a usable `http://` URL.
    #[error(
        "codec endpoint `{0}` is not a valid http:// URL (https needs a TLS-terminating proxy for now)"
    )]
    BadEndpoint(String),
    /// A header name or value is invalid.
    #[error("header `{0}` is not a valid HTTP header")]
    BadHeader(String),
    /// The connection or request failed.
    #[error("request to {url} failed: {message}")]
    Transport {
        /// The URL called.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered with an error status.
    #[error("{url} answered {status}: {body}")]
    Status {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: StatusCode,
        /// The answer body (its `detail`, when JSON).
        body: String,
    },
    /// The answer is not a valid Payloads body, or has the wrong count.
    #[error("{url} answered with an invalid body: {message}")]
    BadAnswer {
        /// The URL called.
        url: String,
        /// What is wrong.
        message: String,
    },
}

/// A codec that forwards batches to a Codec Server.
#[derive(Clone)]
pub struct RemotePayloadCodec {
    client: Client<HttpConnector, Full<Bytes>>,
    endpoint: String,
    namespace: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
}

impl std::fmt::Debug for RemotePayloadCodec {
    /// Header values may be credentials: only names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemotePayloadCodec")
            .field("endpoint", &self.endpoint)
            .field("namespace", &self.namespace)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl RemotePayloadCodec {
    /// A codec for `endpoint` (e.g. `http://127.0.0.1:8888` or
    /// `http://host/codec`) and `namespace`.
    pub fn new(endpoint: &str, namespace: &str) -> Result<Self, RemoteCodecError> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let uri: Uri = format!("{endpoint}/decode")
            .parse()
            .map_err(|_| RemoteCodecError::BadEndpoint(endpoint.clone()))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(RemoteCodecError::BadEndpoint(endpoint));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            endpoint,
            namespace: namespace.to_owned(),
            headers: Vec::new(),
            timeout: Duration::from_secs(30),
        })
    }

    /// Sends `Authorization: <value>` (e.g. `Bearer <token>`).
    pub fn with_authorization(self, value: &str) -> Result<Self, RemoteCodecError> {
        self.with_header("authorization", value)
    }

    /// Sends an extra header on every request.
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, RemoteCodecError> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| RemoteCodecError::BadHeader(name.to_owned()))?;
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| RemoteCodecError::BadHeader(name.to_string()))?;
        value.set_sensitive(true);
        self.headers.push((name, value));
        Ok(self)
    }

    /// Sets the per-request timeout (default 30 s).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn call(
        &self,
        action: &str,
        payloads: Vec<Payload>,
    ) -> Result<Vec<Payload>, RemoteCodecError> {
        let url = format!("{}/{action}", self.endpoint);
        let transport = |message: String| RemoteCodecError::Transport {
            url: url.clone(),
            message,
        };
        let sent = payloads.len();
        let body =
            serde_json::to_vec(&Payloads { payloads }).map_err(|e| transport(e.to_string()))?;
        let mut request = Request::post(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-namespace", &self.namespace)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| transport(e.to_string()))?;
        for (name, value) in &self.headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| transport(e.to_string()))?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| transport(e.to_string()))?
                .to_bytes();
            Ok::<_, RemoteCodecError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| transport(format!("no answer within {:?}", self.timeout)))??;
        if status != StatusCode::OK {
            let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(500).collect());
            return Err(RemoteCodecError::Status {
                url,
                status,
                body: detail,
            });
        }
        let answer: Payloads =
            serde_json::from_slice(&bytes).map_err(|e| RemoteCodecError::BadAnswer {
                url: url.clone(),
                message: e.to_string(),
            })?;
        if answer.payloads.len() != sent {
            return Err(RemoteCodecError::BadAnswer {
                url,
                message: format!("sent {sent} payloads, got {} back", answer.payloads.len()),
            });
        }
        Ok(answer.payloads)
    }
}

fn to_codec_error(err: RemoteCodecError) -> PayloadCodecError {
    let kind = match &err {
        RemoteCodecError::Status { status, .. } if *status == StatusCode::UNPROCESSABLE_ENTITY => {
            CodecErrorKind::InvalidPayload
        }
        RemoteCodecError::Status { status, .. } if status.is_client_error() => {
            CodecErrorKind::InvalidPayload
        }
        _ => CodecErrorKind::Internal,
    };
    PayloadCodecError::new(kind, err)
}

impl PayloadCodec for RemotePayloadCodec {
    fn name(&self) -> &str {
        "remote"
    }

    fn encode(
        &self,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'_, Result<Vec<Payload>, PayloadCodecError>> {
        Box::pin(async move { self.call("encode", payloads).await.map_err(to_codec_error) })
    }

    fn decode(
        &self,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'_, Result<Vec<Payload>, PayloadCodecError>> {
        Box::pin(async move { self.call("decode", payloads).await.map_err(to_codec_error) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked() {
        RemotePayloadCodec::new("http://127.0.0.1:8888/codec/", "default").unwrap();
        assert!(matches!(
            RemotePayloadCodec::new("ftp://x", "default"),
            Err(RemoteCodecError::BadEndpoint(_))
        ));
        assert!(matches!(
            RemotePayloadCodec::new("not a url", "default"),
            Err(RemoteCodecError::BadEndpoint(_))
        ));
    }

    #[test]
    fn debug_hides_header_values() {
        let codec = RemotePayloadCodec::new("http://h", "ns")
            .unwrap()
            .with_authorization("Bearer s3cret")
            .unwrap();
        assert!(!format!("{codec:?}").contains("s3cret"));
    }
}
