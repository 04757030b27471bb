//! AWS KMS as a KEK: the `Encrypt` and `Decrypt` actions of the KMS JSON
//! protocol, signed with SigV4 by object_store's signer. Works with AWS and
//! with moto's server (`endpoint`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request};
use http_body_util::Full;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use payload_codecs::SecretKey;
use payload_converter::BoxFuture;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::KekError;
use crate::http::{JsonClient, transient_status};
use crate::kek::KeyEncryptionKey;

/// One KMS key.
pub(crate) struct AwsKmsKek {
    pub(crate) client: JsonClient,
    /// `https://kms.<region>.amazonaws.com`, or an emulator's URL.
    pub(crate) endpoint: String,
    pub(crate) region: String,
    pub(crate) key_id: String,
    pub(crate) credential: AwsCredential,
}

impl std::fmt::Debug for AwsKmsKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKmsKek")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptAnswer {
    ciphertext_blob: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptAnswer {
    plaintext: Zeroizing<String>,
}

#[derive(Deserialize)]
struct Fault {
    #[serde(rename = "__type", default)]
    kind: String,
    #[serde(alias = "Message", default)]
    message: String,
}

/// KMS faults that are the wrapped key's (the payload's), not this
/// process's.
const CIPHERTEXT_FAULTS: [&str; 2] = ["InvalidCiphertextException", "IncorrectKeyException"];

/// KMS faults worth retrying (throttling and KMS's own failures).
const TRANSIENT_FAULTS: [&str; 4] = [
    "ThrottlingException",
    "KMSInternalException",
    "DependencyTimeoutException",
    "KeyUnavailableException",
];

impl AwsKmsKek {
    async fn call(&self, action: &str, body: &serde_json::Value) -> Result<Bytes, KekError> {
        let body = Bytes::from(body.to_string());
        let url = format!("{}/", self.endpoint);
        // The signer adds `host` from the URL.
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header(CONTENT_TYPE, "application/x-amz-json-1.1")
            .header("X-Amz-Target", format!("TrentService.{action}"))
            .body(object_store::client::HttpRequestBody::from(body.clone()))
            .map_err(|e| KekError::Refused(format!("invalid KMS endpoint `{url}`: {e}")))?;
        AwsAuthorizer::new(&self.credential, "kms", &self.region)
            .try_authorize(&mut request, None)
            .map_err(|e| KekError::Refused(format!("cannot sign the KMS request: {e}")))?;
        let request = request.map(|_| Full::new(body));
        let (status, answer) = self.client.send(request).await?;
        if status.is_success() {
            return Ok(answer);
        }
        let fault = serde_json::from_slice::<Fault>(&answer).unwrap_or(Fault {
            kind: String::new(),
            message: String::from_utf8_lossy(&answer).chars().take(200).collect(),
        });
        let kind = fault.kind.rsplit('#').next().unwrap_or_default().to_owned();
        let message = format!(
            "AWS KMS answered {status} to {action}: {kind} {}",
            fault.message
        );
        Err(
            if transient_status(status) || TRANSIENT_FAULTS.contains(&kind.as_str()) {
                KekError::Transient(message)
            } else if CIPHERTEXT_FAULTS.contains(&kind.as_str()) {
                KekError::Rejected(message)
            } else {
                KekError::Refused(message)
            },
        )
    }
}

fn bad_answer(action: &str, e: serde_json::Error) -> KekError {
    KekError::Transient(format!(
        "the KMS {action} answer is not what KMS returns: {e}"
    ))
}

impl KeyEncryptionKey for AwsKmsKek {
    fn wrap<'a>(&'a self, key: &'a SecretKey) -> BoxFuture<'a, Result<Vec<u8>, KekError>> {
        Box::pin(async move {
            let plain = key.to_base64();
            let body = serde_json::json!({ "KeyId": self.key_id, "Plaintext": plain.as_str() });
            let answer = self.call("Encrypt", &body).await?;
            let answer: EncryptAnswer =
                serde_json::from_slice(&answer).map_err(|e| bad_answer("Encrypt", e))?;
            STANDARD
                .decode(answer.ciphertext_blob)
                .map_err(|_| KekError::Transient("the KMS CiphertextBlob is not base64".into()))
        })
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a [u8],
    ) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, KekError>> {
        Box::pin(async move {
            let body = serde_json::json!({
                "KeyId": self.key_id,
                "CiphertextBlob": STANDARD.encode(wrapped),
            });
            let answer = self.call("Decrypt", &body).await?;
            let answer: DecryptAnswer =
                serde_json::from_slice(&answer).map_err(|e| bad_answer("Decrypt", e))?;
            STANDARD
                .decode(answer.plaintext.as_bytes())
                .map(Zeroizing::new)
                .map_err(|_| KekError::Transient("the KMS Plaintext is not base64".into()))
        })
    }
}
