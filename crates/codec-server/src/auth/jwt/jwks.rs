//! Fetching a JWKS and keeping its usable signature keys.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{ACCEPT, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;
use serde_json::Value;

/// Longest a JWKS fetch may take, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// One public key of the JWKS.
pub(super) struct VerifyingKey {
    pub(super) key: DecodingKey,
    pub(super) family: AlgorithmFamily,
    /// The JWK's `alg`, when it names one.
    pub(super) alg: Option<Algorithm>,
}

/// Fetches and parses the JWKS at `uri`; the error is a reason to show.
pub(super) async fn fetch_jwks(uri: &Uri) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let request = Request::get(uri.clone())
        .header(ACCEPT, "application/json")
        .header(
            USER_AGENT,
            concat!("payloadkit-codec-server/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::new())
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let fetch = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| payload_converter::error_text(&e))?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(format!("it answered HTTP {status}"));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| {
                format!("reading the answer failed ({e}); the limit is {MAX_JWKS_BYTES} bytes")
            })?
            .to_bytes();
        parse_jwks(&body)
    };
    tokio::time::timeout(FETCH_TIMEOUT, fetch)
        .await
        .map_err(|_| format!("no answer within {} s", FETCH_TIMEOUT.as_secs()))?
}

/// The usable signature keys of a JWKS document, by key id. Keys without an
/// id, for encryption, symmetric, of unknown type or malformed are skipped.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<Value>,
    }
    let raw: RawSet = serde_json::from_slice(body)
        .map_err(|e| format!("the answer is not a JWKS document ({e})"))?;
    let total = raw.keys.len();
    let mut keys = HashMap::new();
    for value in raw.keys {
        if let Some((kid, key)) = usable_key(value) {
            keys.insert(kid, Arc::new(key));
        }
    }
    if keys.is_empty() {
        return Err(format!(
            "the JWKS has no usable signature keys ({total} keys, none with a `kid` and an RSA, EC or OKP public key)"
        ));
    }
    Ok(keys)
}

fn usable_key(value: Value) -> Option<(String, VerifyingKey)> {
    let jwk: Jwk = serde_json::from_value(value).ok()?;
    let kid = jwk.common.key_id.clone()?;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
        AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
        AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
        // Symmetric keys must never verify tokens: the JWKS is public.
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm {
        // A key meant for something else (e.g. RSA-OAEP) is skipped.
        Some(named) => Some(named.to_string().parse::<Algorithm>().ok()?),
        None => None,
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some((kid, VerifyingKey { key, family, alg }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn jwks_keeps_only_usable_signature_keys() {
        let body = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "XYZ", "kid": "future"},
        ]});
        let keys = parse_jwks(body.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["ec"]);
        assert_eq!(keys["ec"].family, AlgorithmFamily::Ec);
        let err = parse_jwks(br#"{"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}"#)
            .err()
            .unwrap();
        assert!(err.contains("no usable signature keys"), "{err}");
        assert!(parse_jwks(b"<html>").is_err());
    }
}
