//! A small JSON-over-HTTP client for KMS APIs: hyper with rustls on ring
//! (payloadkit's TLS stack), one timeout per call, answers capped in size.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::KekError;

/// KMS answers are small (a wrapped or unwrapped key in JSON).
const MAX_ANSWER: usize = 64 * 1024;

/// Posts JSON and reads the answer.
#[derive(Clone)]
pub(crate) struct JsonClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for JsonClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl JsonClient {
    /// A client whose calls each take at most `timeout` (connecting
    /// included).
    pub(crate) fn new(timeout: Duration) -> Result<Self, String> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(timeout));
        tcp.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Self { client, timeout })
    }

    /// Sends `request`; the status and body of the answer. No connection,
    /// a timeout or a cut answer are [`KekError::Transient`].
    pub(crate) async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), KekError> {
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| KekError::Transient(format!("no answer: {}", error_chain(&e))))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| KekError::Transient(format!("answer cut short: {e}")))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| KekError::Transient(format!("no answer within {:?}", self.timeout)))?
    }
}

/// An error and its causes, joined (hyper's own message is only "client
/// error (Connect)").
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether an HTTP status is worth retrying.
pub(crate) fn transient_status(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}
