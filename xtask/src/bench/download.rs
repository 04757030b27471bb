//! The external storage case of `cargo xtask bench`: `/download` of a
//! stored, encrypted payload against the direct way to the same bytes.
//!
//! moto's S3 server (from `target/bench-venv`) holds the objects; our
//! release `codec-server` runs with `chain = ["encrypt"]` and an S3
//! `storage` section pointing at it. One 4 MiB `json/plain` payload is
//! stored through `/encode`, then fetched and decoded N times in a row two
//! ways: `POST /download` of its reference, and, in this process, a GET
//! with object_store (the S3 client the server uses, signing included),
//! the SHA-256 check and the AES-256-GCM decrypt. Then 8 concurrent
//! `/download`s of a 16 MiB payload, a few rounds, against the server's
//! peak RSS.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::TokioExecutor;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody,
    HttpResponse, HttpResponseBody, HttpService,
};
use object_store::{ObjectStore, ObjectStoreExt as _};
use prost::Message as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::load::{self, Stats};
use super::{Server, free_port};

const BUCKET: &str = "temporal-payloads";
/// Timed fetches of the 4 MiB payload, each way (after a warm-up).
const SEQUENTIAL: usize = 30;
const CONCURRENT: usize = 8;
const ROUNDS: usize = 4;
const SMALL: usize = 4 * 1024 * 1024;
const LARGE: usize = 16 * 1024 * 1024;
const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What the case measured.
struct Figures {
    download: Stats,
    direct: Stats,
    /// Mean seconds of the direct side's GET alone, and of a `/download`
    /// as the server times it (`codec_server_request_duration_seconds`).
    direct_get: f64,
    server_time: f64,
    /// The `/download` answer's size, and the echo server's mean time to
    /// take a body that size and send it back (the loopback transfer).
    answer_len: usize,
    echo: Stats,
    /// Per-request latencies of the concurrent rounds.
    concurrent: Stats,
    /// Peak RSS of the server over the concurrent rounds (VmHWM reset
    /// before them), and before the reset (the `/encode`s included).
    peak_rss: u64,
    peak_rss_before: u64,
    hwm_reset: bool,
}

/// Runs the case; answers its part of the report (markdown).
pub(super) async fn measure(root: &Path, keyring: &Path) -> anyhow::Result<String> {
    let dir = root.join("target/bench");
    let moto_port = free_port()?;
    let _moto = Server::start(
        "moto",
        Command::new(root.join("target/bench-venv/bin/moto_server")).args([
            "-H",
            "127.0.0.1",
            "-p",
            &moto_port.to_string(),
        ]),
        moto_port,
        &dir.join("moto.log"),
    )?;
    let endpoint = format!("http://127.0.0.1:{moto_port}");
    create_bucket(moto_port)?;
    let server = start_server(root, keyring, &endpoint)?;

    // The 4 MiB payload: stored by /encode, checked both ways once.
    let small = plain_json(SMALL, 1);
    let small_ref = encode(&server, &small).await?;
    let claim = claim(&small_ref)?;
    eprintln!(
        "external storage: 4 MiB stored as {} ({} bytes)",
        claim.key, claim.size
    );
    let store = s3_client(&endpoint)?;
    let key = aes_key(keyring)?;
    let answer_len = check_download(&server, &small_ref, &small).await?;
    let direct = fetch_and_decode(&store, &claim, &key).await?;
    if direct != small {
        bail!("the direct fetch and decode did not give back the 4 MiB payload");
    }

    let before = download_seconds(&http_raw(server.addr.port(), "GET", "/metrics")?);
    let download = load::sequential(server.addr, "/download", small_ref, SEQUENTIAL).await?;
    if download.errors > 0 {
        bail!("{} of the timed /download requests failed", download.errors);
    }
    let after = download_seconds(&http_raw(server.addr.port(), "GET", "/metrics")?);
    let server_time = (after.0 - before.0) / (after.1 - before.1).max(1.0);
    let mut times = Vec::new();
    for i in 0..10 + SEQUENTIAL {
        let t = Instant::now();
        let payload = fetch_and_decode(&store, &claim, &key).await?;
        if i >= 10 {
            times.push(t.elapsed());
        }
        drop(payload);
    }
    let direct = Stats::from_latencies(&times, SMALL);
    let path = object_store::path::Path::parse(&claim.key)?;
    let t = Instant::now();
    for _ in 0..SEQUENTIAL {
        store.get(&path).await?.bytes().await?;
    }
    let direct_get = t.elapsed().as_secs_f64() / SEQUENTIAL as f64;
    let echo_server = super::start_echo(root)?;
    let body = Bytes::from(vec![b'a'; answer_len]);
    let echo = load::sequential(echo_server.addr, "/", body, SEQUENTIAL).await?;
    drop(echo_server);
    eprintln!(
        "{:>16} {:>15}: {}",
        "4 MiB",
        "/download",
        download.summary()
    );
    eprintln!("{:>16} {:>15}: {}", "4 MiB", "direct", direct.summary());

    // The 16 MiB payload, fetched by 8 requests at once.
    let large = plain_json(LARGE, 2);
    let large_ref = encode(&server, &large).await?;
    check_download(&server, &large_ref, &large).await?;
    let peak_rss_before = server.peak_rss();
    let hwm_reset = reset_peak_rss(&server);
    let mut latencies = Vec::new();
    for _ in 0..ROUNDS {
        let requests = (0..CONCURRENT).map(|_| {
            let body = large_ref.clone();
            let addr = server.addr;
            tokio::spawn(async move {
                let t = Instant::now();
                let (status, answer) = load::once(addr, "/download", body).await?;
                anyhow::Ok((status, answer.len(), t.elapsed()))
            })
        });
        let requests: Vec<_> = requests.collect();
        for request in requests {
            let (status, len, elapsed) = request.await??;
            if status != 200 || len < LARGE {
                bail!("a concurrent 16 MiB /download answered {status} with {len} bytes");
            }
            latencies.push(elapsed);
        }
    }
    let concurrent = Stats::from_latencies(&latencies, LARGE);
    let figures = Figures {
        download,
        direct,
        direct_get,
        server_time,
        answer_len,
        echo,
        concurrent,
        peak_rss: server.peak_rss(),
        peak_rss_before,
        hwm_reset,
    };
    Ok(report(&figures))
}

/// One bodiless request on a fresh connection; answers the whole response.
fn http_raw(port: u16, method: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// The sum and count of `codec_server_request_duration_seconds` of
/// `/download` in a Prometheus text answer.
fn download_seconds(text: &str) -> (f64, f64) {
    let value = |suffix: &str| {
        text.lines()
            .filter(|l| {
                l.starts_with(&format!("codec_server_request_duration_seconds_{suffix}"))
                    && l.contains("route=\"download\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    (value("sum"), value("count"))
}

/// `PUT /temporal-payloads` on moto: creates the bucket.
fn create_bucket(port: u16) -> anyhow::Result<()> {
    let answer = http_raw(port, "PUT", &format!("/{BUCKET}"))?;
    if !answer.starts_with("HTTP/1.1 200") && !answer.starts_with("HTTP/1.0 200") {
        bail!(
            "creating the bucket on moto failed: {}",
            answer.lines().next().unwrap_or("")
        );
    }
    Ok(())
}

/// Our release codec-server with an S3 `storage` section on moto.
fn start_server(root: &Path, keyring: &Path, endpoint: &str) -> anyhow::Result<Server> {
    let config = root.join("target/bench/download-config.toml");
    fs::write(
        &config,
        format!(
            "[server]\nmax_body_bytes = {}\n\n[default]\nkeyring = {:?}\nchain = [\"encrypt\"]\n\n\
             [default.storage]\ndriver = \"s3\"\nbucket = \"{BUCKET}\"\nendpoint = \"{endpoint}\"\n\
             region = \"us-east-1\"\n",
            64 * 1024 * 1024,
            keyring.display().to_string(),
        ),
    )?;
    let port = free_port()?;
    Server::start(
        "codec-server (S3)",
        Command::new(root.join("target/release/codec-server"))
            .arg("--config")
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env(
                "CODEC_SERVER_LOG",
                std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "info".to_owned()),
            ),
        port,
        &root.join("target/bench/codec-server-s3.log"),
    )
}

/// A `json/plain` payload of `size` bytes: a JSON string of pseudo-random
/// letters and digits (about 6 bits of 8 each: compresses little).
fn plain_json(size: usize, seed: u64) -> Vec<u8> {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ seed;
    let mut data = Vec::with_capacity(size);
    data.push(b'"');
    while data.len() < size - 1 {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        for byte in word.to_le_bytes() {
            if data.len() < size - 1 {
                data.push(ALPHABET[usize::from(byte) % ALPHABET.len()]);
            }
        }
    }
    data.push(b'"');
    data
}

/// `/encode` of one `json/plain` payload; answers the body (one reference),
/// which is also the `/download` request.
async fn encode(server: &Server, data: &[u8]) -> anyhow::Result<Bytes> {
    let body = format!(
        r#"{{"payloads":[{{"metadata":{{"encoding":"{}"}},"data":"{}"}}]}}"#,
        BASE64.encode("json/plain"),
        BASE64.encode(data)
    );
    let (status, answer) = load::once(server.addr, "/encode", Bytes::from(body)).await?;
    if status != 200 {
        bail!(
            "/encode of {} bytes failed: {status} {}",
            data.len(),
            String::from_utf8_lossy(&answer)
        );
    }
    Ok(answer)
}

/// What a reference names.
struct Claim {
    key: String,
    sha256: String,
    size: u64,
}

/// The claim of the one reference in an `/encode` answer.
fn claim(answer: &[u8]) -> anyhow::Result<Claim> {
    let value: serde_json::Value = serde_json::from_slice(answer)?;
    let payload = &value["payloads"][0];
    let metadata =
        |name: &str| -> Option<Vec<u8>> { BASE64.decode(payload["metadata"][name].as_str()?).ok() };
    if metadata("encoding").as_deref() != Some(b"json/protobuf")
        || metadata("messageType").as_deref()
            != Some(b"temporal.api.sdk.v1.ExternalStorageReference")
    {
        bail!(
            "/encode did not answer a storage reference: {}",
            String::from_utf8_lossy(&answer[..answer.len().min(300)])
        );
    }
    let data = BASE64.decode(payload["data"].as_str().context("no data")?)?;
    let reference: serde_json::Value = serde_json::from_slice(&data)?;
    let claim = &reference["claimData"];
    let field = |name: &str| {
        claim[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the claim has no {name}: {reference}"))
    };
    if field("bucket")? != BUCKET || field("hash_algorithm")? != "sha256" {
        bail!("unexpected claim: {reference}");
    }
    let size = payload["externalPayloads"][0]["sizeBytes"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Claim {
        key: field("key")?,
        sha256: field("hash_value")?,
        size,
    })
}

/// One `/download`, whose answer must be `expected`; answers its size.
async fn check_download(
    server: &Server,
    reference: &Bytes,
    expected: &[u8],
) -> anyhow::Result<usize> {
    let (status, answer) = load::once(server.addr, "/download", reference.clone()).await?;
    let value: serde_json::Value = serde_json::from_slice(&answer)
        .with_context(|| format!("/download answered {status} and no JSON"))?;
    let data = value["payloads"][0]["data"]
        .as_str()
        .and_then(|d| BASE64.decode(d).ok());
    if status != 200 || data.as_deref() != Some(expected) {
        bail!(
            "/download did not give back the stored payload: {status} {}",
            String::from_utf8_lossy(&answer[..answer.len().min(300)])
        );
    }
    Ok(answer.len())
}

/// A `temporal.api.common.v1.Payload`, as far as this case reads one.
#[derive(Clone, PartialEq, prost::Message)]
struct Payload {
    #[prost(btree_map = "string, bytes", tag = "1")]
    metadata: BTreeMap<String, Vec<u8>>,
    #[prost(bytes = "bytes", tag = "2")]
    data: Bytes,
}

/// The direct way: GET the object, check its SHA-256, decode the stored
/// `Payload`, decrypt it (the samples' format: nonce ‖ ciphertext ‖ tag of
/// the serialized inner payload), decode the inner one; answers its data.
async fn fetch_and_decode(
    store: &dyn ObjectStore,
    claim: &Claim,
    key: &LessSafeKey,
) -> anyhow::Result<Bytes> {
    let path = object_store::path::Path::parse(&claim.key)?;
    let object = store.get(&path).await?.bytes().await?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &object);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    if hex != claim.sha256 {
        bail!(
            "the object's SHA-256 is {hex}, the claim says {}",
            claim.sha256
        );
    }
    let stored = Payload::decode(object)?;
    if stored.metadata.get("encoding").map(Vec::as_slice) != Some(b"binary/encrypted") {
        bail!("the stored payload is not binary/encrypted");
    }
    let data = &stored.data;
    if data.len() < NONCE_LEN + 16 {
        bail!("the stored payload is truncated");
    }
    let nonce = Nonce::try_assume_unique_for_key(&data[..NONCE_LEN])
        .map_err(|_| anyhow::anyhow!("bad nonce"))?;
    let mut buf = data[NONCE_LEN..].to_vec();
    let plain_len = key
        .open_in_place(nonce, Aad::empty(), &mut buf)
        .map_err(|_| anyhow::anyhow!("the stored payload does not decrypt"))?
        .len();
    buf.truncate(plain_len);
    Ok(Payload::decode(Bytes::from(buf))?.data)
}

/// The bench keyring's one key, for AES-256-GCM.
fn aes_key(keyring: &Path) -> anyhow::Result<LessSafeKey> {
    let text = fs::read_to_string(keyring)?;
    let table: toml::Table = toml::from_str(&text)?;
    let encoded = table["keys"][0]["base64"]
        .as_str()
        .context("the bench keyring has no base64 key")?;
    let bytes = BASE64.decode(encoded)?;
    let key = UnboundKey::new(&AES_256_GCM, &bytes)
        .map_err(|_| anyhow::anyhow!("the bench key is not 32 bytes"))?;
    Ok(LessSafeKey::new(key))
}

/// object_store's S3 client on moto, with the server's credentials, over
/// plain HTTP.
fn s3_client(endpoint: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_http_connector(PlainHttp)
        .build()?;
    Ok(Arc::new(store))
}

/// Makes object_store's HTTP client: hyper over plain TCP (moto is on
/// loopback; no TLS).
#[derive(Debug, Clone, Copy)]
struct PlainHttp;

impl HttpConnector for PlainHttp {
    fn connect(&self, _: &object_store::ClientOptions) -> object_store::Result<HttpClient> {
        let mut tcp = TcpConnector::new();
        tcp.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(tcp);
        Ok(HttpClient::new(PlainService(client)))
    }
}

#[derive(Debug)]
struct PlainService(Client<TcpConnector, HttpRequestBody>);

#[async_trait]
impl HttpService for PlainService {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let response = self
            .0
            .request(request)
            .await
            .map_err(|e| HttpError::new(HttpErrorKind::Request, e))?;
        let (parts, body) = response.into_parts();
        let body = body.map_err(|e| HttpError::new(HttpErrorKind::Interrupted, e));
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body)))
    }
}

/// Resets the server's VmHWM to its current RSS (`/proc/<pid>/clear_refs`,
/// Linux 4.0+); false when the kernel refused.
fn reset_peak_rss(server: &Server) -> bool {
    fs::write(format!("/proc/{}/clear_refs", server.child.id()), "5").is_ok()
}

fn report(f: &Figures) -> String {
    let mib = |b: u64| b as f64 / 1048576.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n| external storage (S3 on moto), 4 MiB json/plain encrypted, {SEQUENTIAL} in a row | \
         mean ms | p50 ms | p99 ms |\n| --- | ---: | ---: | ---: |"
    );
    for (name, s) in [
        ("POST /download (codec-server)", &f.download),
        (
            "direct: object_store GET + SHA-256 + AES-GCM decode in process",
            &f.direct,
        ),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {:.2} | {:.2} | {:.2} |",
            s.mean_ms(),
            s.p50_ms(),
            s.p99_ms()
        );
    }
    let _ = writeln!(
        out,
        "| /download as the server times it (`codec_server_request_duration_seconds`) | \
         {:.2} | | |\n| the direct side's S3 GET alone | {:.2} | | |",
        f.server_time * 1e3,
        f.direct_get * 1e3
    );
    let _ = writeln!(
        out,
        "| echo of a body the size of the /download answer ({:.1} MiB), there and back | \
         {:.2} | {:.2} | {:.2} |",
        mib(f.answer_len as u64),
        f.echo.mean_ms(),
        f.echo.p50_ms(),
        f.echo.p99_ms()
    );
    let in_flight = (CONCURRENT * LARGE) as u64;
    let _ = writeln!(
        out,
        "\n| {CONCURRENT} concurrent /download × 16 MiB, {ROUNDS} rounds | value |\n| --- | ---: |"
    );
    let _ = writeln!(
        out,
        "| request latency, mean / p99 ms | {:.0} / {:.0} |",
        f.concurrent.mean_ms(),
        f.concurrent.p99_ms()
    );
    let _ = writeln!(out, "| bytes in flight | {:.0} MiB |", mib(in_flight));
    let _ = writeln!(
        out,
        "| peak RSS of codec-server over the rounds{} | {:.1} MiB |",
        if f.hwm_reset {
            ""
        } else {
            " (VmHWM not reset: since start)"
        },
        mib(f.peak_rss)
    );
    let _ = writeln!(
        out,
        "| peak RSS before them (the /encodes of 4 and 16 MiB) | {:.1} MiB |",
        mib(f.peak_rss_before)
    );
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let ratio = f.direct.mean_ms() / f.download.mean_ms();
    let bound = 3 * in_flight;
    let _ = writeln!(
        out,
        "\n| target | measured | verdict |\n| --- | --- | --- |"
    );
    let _ = writeln!(
        out,
        "| direct mean / /download mean ≥ 0.80 (4 MiB) | {ratio:.2} ({:.2} ms / {:.2} ms) | {} |",
        f.direct.mean_ms(),
        f.download.mean_ms(),
        verdict(ratio >= 0.8)
    );
    let _ = writeln!(
        out,
        "| peak RSS < 3 × bytes in flight ({:.0} MiB) | {:.1} MiB ({:.2}×) | {} |",
        mib(bound),
        mib(f.peak_rss),
        f.peak_rss as f64 / in_flight as f64,
        verdict(f.peak_rss < bound)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_json_is_a_json_string_of_the_size_asked() {
        let data = plain_json(1000, 1);
        assert_eq!(data.len(), 1000);
        let text: String = serde_json::from_slice(&data).unwrap();
        assert_eq!(text.len(), 998);
        assert_ne!(plain_json(1000, 2), data);
    }

    #[test]
    fn a_claim_is_read_from_an_encode_answer() {
        let reference = r#"{"driverName":"aws.s3driver","claimData":{"bucket":"temporal-payloads","key":"v0/d/sha256/ab","hash_algorithm":"sha256","hash_value":"ab"}}"#;
        let answer = format!(
            r#"{{"payloads":[{{"metadata":{{"encoding":"{}","messageType":"{}"}},"data":"{}","externalPayloads":[{{"sizeBytes":"42"}}]}}]}}"#,
            BASE64.encode("json/protobuf"),
            BASE64.encode("temporal.api.sdk.v1.ExternalStorageReference"),
            BASE64.encode(reference)
        );
        let claim = claim(answer.as_bytes()).unwrap();
        assert_eq!(claim.key, "v0/d/sha256/ab");
        assert_eq!(claim.sha256, "ab");
        assert_eq!(claim.size, 42);
        assert!(super::claim(br#"{"payloads":[{"metadata":{}}]}"#).is_err());
    }
}
