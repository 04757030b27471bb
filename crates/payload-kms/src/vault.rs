//! Vault and OpenBao transit as a KEK: `POST /v1/<mount>/encrypt/<key>`
//! and `/decrypt/<key>`. The wrapped key is the transit ciphertext text
//! (`vault:v1:…`) as bytes, as gocloud's `hashivault` keeper stores it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request};
use http_body_util::Full;
use payload_codecs::SecretKey;
use payload_converter::BoxFuture;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::KekError;
use crate::http::{JsonClient, transient_status};
use crate::kek::KeyEncryptionKey;

/// One transit key.
pub(crate) struct VaultKek {
    pub(crate) client: JsonClient,
    /// `http://127.0.0.1:8200`, no trailing slash.
    pub(crate) address: String,
    pub(crate) mount: String,
    pub(crate) key: String,
    pub(crate) token: Zeroizing<String>,
}

impl std::fmt::Debug for VaultKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultKek")
            .field("address", &self.address)
            .field("mount", &self.mount)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Answer<T> {
    data: T,
}

#[derive(Deserialize)]
struct Ciphertext {
    ciphertext: String,
}

#[derive(Deserialize)]
struct Plaintext {
    plaintext: Zeroizing<String>,
}

#[derive(Deserialize)]
struct Errors {
    #[serde(default)]
    errors: Vec<String>,
}

impl VaultKek {
    async fn call(&self, op: &str, body: &serde_json::Value) -> Result<Bytes, KekError> {
        let url = format!("{}/v1/{}/{op}/{}", self.address, self.mount, self.key);
        let request = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header(CONTENT_TYPE, "application/json")
            .header("X-Vault-Token", self.token.as_str())
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| KekError::Refused(format!("invalid Vault URL `{url}`: {e}")))?;
        let (status, answer) = self.client.send(request).await?;
        if status.is_success() {
            return Ok(answer);
        }
        let reason = serde_json::from_slice::<Errors>(&answer)
            .ok()
            .filter(|e| !e.errors.is_empty())
            .map(|e| e.errors.join("; "))
            .unwrap_or_else(|| String::from_utf8_lossy(&answer).chars().take(200).collect());
        let message = format!("Vault answered {status} to {op}: {reason}");
        Err(if transient_status(status) {
            KekError::Transient(message)
        } else if op == "decrypt"
            && status == http::StatusCode::BAD_REQUEST
            && bad_ciphertext(&reason)
        {
            KekError::Rejected(message)
        } else {
            KekError::Refused(message)
        })
    }
}

/// Whether transit's 400 to a decrypt is about the ciphertext (the
/// payload's fault), not the key or the token.
fn bad_ciphertext(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    [
        "invalid ciphertext",
        "message authentication failed",
        "unable to decrypt",
        "invalid key version",
        "invalid version",
        "base64",
    ]
    .iter()
    .any(|text| reason.contains(text))
}

fn bad_answer(op: &str, e: serde_json::Error) -> KekError {
    KekError::Transient(format!(
        "Vault's {op} answer is not what transit returns: {e}"
    ))
}

impl KeyEncryptionKey for VaultKek {
    fn wrap<'a>(&'a self, key: &'a SecretKey) -> BoxFuture<'a, Result<Vec<u8>, KekError>> {
        Box::pin(async move {
            let plain = key.to_base64();
            let body = serde_json::json!({ "plaintext": plain.as_str() });
            let answer = self.call("encrypt", &body).await?;
            let answer: Answer<Ciphertext> =
                serde_json::from_slice(&answer).map_err(|e| bad_answer("encrypt", e))?;
            Ok(answer.data.ciphertext.into_bytes())
        })
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a [u8],
    ) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, KekError>> {
        Box::pin(async move {
            let ciphertext = std::str::from_utf8(wrapped).map_err(|_| {
                KekError::Rejected("the wrapped key is not Vault transit ciphertext text".into())
            })?;
            let body = serde_json::json!({ "ciphertext": ciphertext });
            let answer = self.call("decrypt", &body).await?;
            let answer: Answer<Plaintext> =
                serde_json::from_slice(&answer).map_err(|e| bad_answer("decrypt", e))?;
            STANDARD
                .decode(answer.data.plaintext.as_bytes())
                .map(Zeroizing::new)
                .map_err(|_| KekError::Refused("Vault's plaintext is not base64".into()))
        })
    }
}
