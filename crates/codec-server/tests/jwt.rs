//! JWT auth against a JWKS served by the test itself: signatures, claims,
//! permissions, key caching, the refetch rate limit and an unavailable
//! identity provider.
//!
//! Keys are ECDSA P-256 pairs generated per test with ring; nothing secret is
//! committed.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode as AxumStatus;
use axum::response::IntoResponse;
use base64::Engine as _;
use codec_server::auth::{Audience, Clock, JwksUrl, JwtSettings};
use codec_server::config::{AuthConfig, NamespaceConfig};
use hyper::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, oneshot};

use crate::util::*;

const ISSUER: &str = "https://idp.test/";
const AUDIENCE: &str = "https://saas-api.tmprl.cloud";

/// A signing key pair and its key id.
struct Signer {
    kid: String,
    key: EncodingKey,
    x: String,
    y: String,
}

impl Signer {
    fn new(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // Uncompressed point: 0x04 ‖ x ‖ y.
        let point = pair.public_key().as_ref();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        Self {
            kid: kid.to_owned(),
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            x: b64(&point[1..33]),
            y: b64(&point[33..65]),
        }
    }

    fn jwk(&self) -> Value {
        json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256",
               "kid": self.kid, "x": self.x, "y": self.y})
    }

    /// A token with `claims`, signed by this key and naming its kid.
    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    /// `Bearer <token>` for a token valid for five minutes with `permissions`.
    fn bearer(&self, permissions: &[&str]) -> String {
        format!("Bearer {}", self.sign(&claims(permissions)))
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Valid standard claims plus `permissions`.
fn claims(permissions: &[&str]) -> Value {
    json!({"sub": "user@example.com", "iss": ISSUER, "aud": [AUDIENCE],
           "iat": now(), "exp": now() + 300, "permissions": permissions})
}

/// The identity provider's JWKS endpoint, counting its fetches.
struct Idp {
    url: String,
    fetches: Arc<AtomicUsize>,
    keys: Arc<Mutex<Vec<Value>>>,
    down: Arc<AtomicBool>,
    _stop: oneshot::Sender<()>,
}

#[derive(Clone)]
struct IdpState {
    fetches: Arc<AtomicUsize>,
    keys: Arc<Mutex<Vec<Value>>>,
    down: Arc<AtomicBool>,
}

async fn jwks(State(state): State<IdpState>) -> axum::response::Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return (AxumStatus::SERVICE_UNAVAILABLE, "maintenance").into_response();
    }
    Json(json!({"keys": *state.keys.lock().await})).into_response()
}

impl Idp {
    async fn start(keys: Vec<Value>) -> Self {
        let state = IdpState {
            fetches: Arc::default(),
            keys: Arc::new(Mutex::new(keys)),
            down: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/.well-known/jwks.json", axum::routing::get(jwks))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            url: format!("http://{addr}/.well-known/jwks.json"),
            fetches: state.fetches,
            keys: state.keys,
            down: state.down,
            _stop: stop,
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A clock the test moves: the JWKS refetch intervals are timed by it, so
/// tests advance it instead of sleeping.
#[derive(Clone, Default)]
struct TestClock(Arc<std::sync::Mutex<Duration>>);

impl TestClock {
    fn clock(&self) -> Clock {
        let offset = self.0.clone();
        let start = std::time::Instant::now();
        Clock::from_fn(move || start + *offset.lock().unwrap())
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

/// A Codec Server whose `payments` namespace uses JWT auth against
/// `jwks_url`; other namespaces have no auth.
async fn server(jwks_url: &str, min_refetch_secs: u64) -> TestServer {
    server_with_clock(jwks_url, min_refetch_secs, &TestClock::default()).await
}

async fn server_with_clock(jwks_url: &str, min_refetch_secs: u64, clock: &TestClock) -> TestServer {
    let auth = AuthConfig::Jwt(JwtSettings {
        issuer: Some(ISSUER.to_owned()),
        audience: Some(Audience::new(vec![AUDIENCE.to_owned()]).unwrap()),
        min_refetch_secs: NonZeroU64::new(min_refetch_secs).unwrap(),
        clock: clock.clock(),
        ..JwtSettings::new(JwksUrl::parse(jwks_url).unwrap())
    });
    spawn_with(move |c, dir| {
        c.namespaces.insert(
            "payments".into(),
            NamespaceConfig::encrypting(dir.join("keyring.toml"), auth),
        );
    })
    .await
}

async fn call_with(server: &TestServer, action: &str, headers: &[(&str, &str)]) -> Answer {
    let mut all = vec![
        ("content-type", "application/json"),
        ("x-namespace", "payments"),
    ];
    all.extend_from_slice(headers);
    request(
        Method::POST,
        &server.url(&format!("/{action}")),
        &all,
        body_of(&[plain("1")]),
    )
    .await
}

async fn call(server: &TestServer, action: &str, authorization: &str) -> Answer {
    call_with(server, action, &[("authorization", authorization)]).await
}

/// The status, code and detail of an error answer.
fn error_of(answer: &Answer) -> (StatusCode, String, String) {
    let json = answer.json();
    (
        answer.status,
        json["error"].as_str().unwrap_or_default().to_owned(),
        json["detail"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn read_tokens_decode_but_cannot_encode() {
    let key = Signer::new("k1");
    let idp = Idp::start(vec![key.jwk()]).await;
    let server = server(&idp.url, 30).await;
    let token = key.bearer(&["payments:read"]);
    assert_eq!(call(&server, "decode", &token).await.status, StatusCode::OK);
    let (status, code, detail) = error_of(&call(&server, "encode", &token).await);
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert!(detail.contains("lacks `payments:write`"), "{detail}");
    assert!(detail.contains("needed to encode"), "{detail}");
}

#[tokio::test]
async fn write_and_admin_tokens_encode_and_decode() {
    let key = Signer::new("k1");
    let idp = Idp::start(vec![key.jwk()]).await;
    let server = server(&idp.url, 30).await;
    for perm in ["payments:write", "payments:admin"] {
        let token = key.bearer(&["orders:read", perm]);
        for action in ["encode", "decode"] {
            let answer = call(&server, action, &token).await;
            assert_eq!(answer.status, StatusCode::OK, "{perm} {action}");
        }
    }
}

#[tokio::test]
async fn tokens_for_another_namespace_are_forbidden() {
    let key = Signer::new("k1");
    let idp = Idp::start(vec![key.jwk()]).await;
    let server = server(&idp.url, 30).await;
    let token = key.bearer(&["orders:admin", "*:admin"]);
    let (status, code, detail) = error_of(&call(&server, "decode", &token).await);
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert!(detail.contains("lacks `payments:read`"), "{detail}");
    let token = format!(
        "Bearer {}",
        key.sign(&json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 60}))
    );
    let (status, _, detail) = error_of(&call(&server, "decode", &token).await);
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(detail.contains("no `permissions` claim"), "{detail}");
}

#[tokio::test]
async fn keys_are_fetched_once_and_cached() {
    let key = Signer::new("k1");
    let idp = Idp::start(vec![key.jwk()]).await;
    let server = server(&idp.url, 30).await;
    // Nothing is fetched before the first token arrives.
    assert_eq!(idp.fetches(), 0);
    let token = key.bearer(&["payments:write"]);
    for action in ["decode", "encode"].repeat(10) {
        assert_eq!(call(&server, action, &token).await.status, StatusCode::OK);
    }
    assert_eq!(idp.fetches(), 1);
}

#[tokio::test]
async fn expired_tokens_are_unauthorized() {
    let key = Signer::new("k1");
    let idp = Idp::start(vec![key.jwk()]).await;
    let server = server(&idp.url, 30).await;
    let mut expired = claims(&["payments:admin"]);
    expired["exp"] = json!(now() - 120);
    let token = key.sign(&expired);
    let (status, code, detail) =
        error_of(&call(&server, "decode", &format!("Bearer {token}")).await);
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert!(detail.contains("expired"), "{detail}");
    assert!(!detail.contains(&token), "the token is echoed: {detail}");
    // Within the leeway a token still passes.
    let mut recent = claims(&["payments:admin"]);
    recent["exp"] = json!(now() - 5);
    let answer = call(&server, "decode", &format!("Bearer {}", key.sign(&recent))).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_audience_or_issuer_is_unauthorized() {
    let key = Signer::new("k1");
    let idp = Idp::start(vec![key.jwk()]).await;
    let server = server(&idp.url, 30).await;
    for (claim, value, expected) in [
        ("aud", json!("https://other-api.example"), "audience"),
        ("iss", json!("https://evil.example/"), "issuer"),
    ] {
        let mut wrong = claims(&["payments:admin"]);
        wrong[claim] = value;
        let answer = call(&server, "decode", &format!("Bearer {}", key.sign(&wrong))).await;
        let (status, _, detail) = error_of(&answer);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{claim}");
        assert!(detail.contains(expected), "{detail}");
        // A configured claim must be present.
        let mut missing = claims(&["payments:admin"]);
        missing.as_object_mut().unwrap().remove(claim);
        let answer = call(&server, "decode", &format!("Bearer {}", key.sign(&missing))).await;
        let (status, _, detail) = error_of(&answer);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{claim}");
        assert!(detail.contains(&format!("no `{claim}` claim")), "{detail}");
    }
}

#[tokio::test]
async fn a_token_signed_by_another_key_with_the_same_kid_is_unauthorized() {
    let key = Signer::new("k1");
    let forger = Signer::new("k1");
    let idp = Idp::start(vec![key.jwk()]).await;
    let server = server(&idp.url, 30).await;
    let answer = call(&server, "decode", &forger.bearer(&["payments:admin"])).await;
    let (status, _, detail) = error_of(&answer);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(detail.contains("signature does not verify"), "{detail}");
}

#[tokio::test]
async fn missing_or_malformed_tokens_are_unauthorized() {
    let key = Signer::new("k1");
    let idp = Idp::start(vec![key.jwk()]).await;
    let server = server(&idp.url, 30).await;
    let (status, code, detail) = error_of(&call_with(&server, "decode", &[]).await);
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert!(detail.contains("Bearer"), "{detail}");
    let (status, _, detail) = error_of(&call(&server, "decode", "Bearer not-a-jwt").await);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(detail.contains("not a JWT"), "{detail}");
    // A symmetric algorithm is refused before any key is looked at.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let hs = jsonwebtoken::encode(
        &header,
        &claims(&["payments:admin"]),
        &EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    let (status, _, detail) = error_of(&call(&server, "decode", &format!("Bearer {hs}")).await);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(detail.contains("HS256"), "{detail}");
    assert!(detail.contains("does not accept"), "{detail}");
    // The UI's id token in Authorization-Extras grants nothing.
    let good = key.bearer(&["payments:admin"]);
    let answer = call_with(&server, "decode", &[("authorization-extras", &good)]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = call_with(
        &server,
        "decode",
        &[("authorization", &good), ("authorization-extras", "junk")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    // Other namespaces keep their own (no) auth.
    let answer = request(
        Method::POST,
        &server.url("/decode"),
        &[
            ("content-type", "application/json"),
            ("x-namespace", "orders"),
        ],
        body_of(&[plain("1")]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_and_finds_a_rotated_key() {
    let old = Signer::new("old");
    let new = Signer::new("new");
    let idp = Idp::start(vec![old.jwk()]).await;
    let clock = TestClock::default();
    let server = server_with_clock(&idp.url, 2, &clock).await;
    let old_token = old.bearer(&["payments:read"]);
    assert_eq!(
        call(&server, "decode", &old_token).await.status,
        StatusCode::OK
    );
    assert_eq!(idp.fetches(), 1);

    // Right after a fetch, unknown kids are refused without refetching,
    // however many arrive.
    for i in 0..20 {
        let bogus = Signer::new(&format!("bogus-{i}"));
        let (status, _, detail) =
            error_of(&call(&server, "decode", &bogus.bearer(&["payments:read"])).await);
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(detail.contains("is not in the JWKS"), "{detail}");
    }
    assert_eq!(idp.fetches(), 1);

    // The provider rotates; once the interval has passed, concurrent
    // requests with the new kid share one refetch.
    idp.keys.lock().await.push(new.jwk());
    clock.advance(Duration::from_secs(2));
    let new_token = new.bearer(&["payments:read"]);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let url = server.url("/decode");
            let auth = new_token.clone();
            tokio::spawn(async move {
                request(
                    Method::POST,
                    &url,
                    &[
                        ("content-type", "application/json"),
                        ("x-namespace", "payments"),
                        ("authorization", &auth),
                    ],
                    body_of(&[plain("1")]),
                )
                .await
                .status
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(idp.fetches(), 2);
    // Both keys now verify from the cache.
    assert_eq!(
        call(&server, "decode", &old_token).await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(&server, "decode", &new_token).await.status,
        StatusCode::OK
    );
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn an_unavailable_jwks_answers_503_and_is_retried_later() {
    let key = Signer::new("k1");
    let idp = Idp::start(vec![key.jwk()]).await;
    idp.down.store(true, Ordering::SeqCst);
    // The server starts although the provider is down.
    let clock = TestClock::default();
    let server = server_with_clock(&idp.url, 2, &clock).await;
    let token = key.bearer(&["payments:read"]);
    let (status, code, detail) = error_of(&call(&server, "decode", &token).await);
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "auth_unavailable")
    );
    // What went wrong is for the log, not for the caller.
    assert!(!detail.contains(&idp.url), "{detail}");
    assert!(!detail.contains("503"), "{detail}");
    assert!(detail.contains("retry shortly"), "{detail}");
    // Retries wait for the interval instead of hammering the provider.
    let again = call(&server, "decode", &token).await;
    assert_eq!(again.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(idp.fetches(), 1);

    idp.down.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(2));
    assert_eq!(call(&server, "decode", &token).await.status, StatusCode::OK);
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn an_unreachable_jwks_answers_503() {
    // A port with nothing listening.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    drop(listener);
    let server = server(&url, 30).await;
    let token = Signer::new("k1").bearer(&["payments:read"]);
    let (status, code, detail) = error_of(&call(&server, "decode", &token).await);
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "auth_unavailable")
    );
    assert!(detail.contains("cannot be fetched"), "{detail}");
    assert!(!detail.contains(&url), "{detail}");
    assert!(!detail.to_lowercase().contains("refused"), "{detail}");
}

#[tokio::test]
async fn waiting_for_the_jwks_ends_with_the_request_timeout() {
    // An identity provider that accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    let auth = AuthConfig::Jwt(JwtSettings::new(JwksUrl::parse(&url).unwrap()));
    let server = spawn_with(move |c, dir| {
        c.server.request_timeout_secs = 1;
        c.namespaces.insert(
            "payments".into(),
            NamespaceConfig::encrypting(dir.join("keyring.toml"), auth),
        );
    })
    .await;
    let token = Signer::new("k1").bearer(&["payments:read"]);
    let started = std::time::Instant::now();
    let (status, code, _) = error_of(&call(&server, "decode", &token).await);
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "timeout")
    );
    // The JWKS fetch itself would wait 10 s.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(listener);
}
