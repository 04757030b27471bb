//! `payloadctl probe`: checks a Codec Server the way the Temporal Web UI
//! (a browser, so CORS first) and CLI call it, and says what to fix.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use payload_converter::PayloadExt as _;
use payload_proto::temporal::api::common::v1::{Payload, Payloads};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::commands::{Outcome, runtime};
use crate::output;

/// Largest answer read.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Check a Codec Server as the Temporal CLI and Web UI will use it.
///
/// Runs, against URL (the endpoint the UI or CLI is given, e.g.
/// http://127.0.0.1:8888 or http://host/codec):
///   cors-preflight  OPTIONS URL/decode from --origin, as a browser does
///                   before every call: must answer 2xx, allow the origin
///                   (echoed or *), POST and the headers the UI sends
///   encode          POST URL/encode of a test payload: 200, one payload,
///                   changed (so the chain really encodes)
///   decode          POST URL/decode of that: the test payload back
///   cors-answer     the decode answer allows the origin too (browsers drop
///                   it otherwise)
///   auth            whether a request without --auth is refused (info)
///   healthz         GET /healthz (info)
///   latency         time of the encode and decode round trip (info)
/// Prints each check as PASS, FAIL (with the reason and what to do) or INFO;
/// exits 1 when any check failed.
#[derive(Debug, Args)]
#[command(
    about = "Check a Codec Server as the Temporal CLI and Web UI will use it",
    verbatim_doc_comment,
    after_long_help = "\
Examples:
  payloadctl probe http://127.0.0.1:8888
  payloadctl probe http://codec.internal:8888/codec --namespace prod --auth \"Bearer $TOKEN\"
  payloadctl probe http://127.0.0.1:8888 --origin https://temporal.example.com --output json"
)]
pub(crate) struct ProbeArgs {
    /// The Codec Server endpoint (http://; /encode and /decode are appended).
    #[arg(value_name = "URL")]
    url: String,
    /// The Web UI origin the browser sends.
    #[arg(long, default_value = "http://localhost:8233")]
    origin: String,
    /// The namespace sent as X-Namespace.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// The Authorization header to send, e.g. "Bearer TOKEN".
    #[arg(
        long,
        value_name = "VALUE",
        env = "PAYLOADCTL_AUTH",
        hide_env_values = true
    )]
    auth: Option<String>,
    /// Seconds to wait for each answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    timeout: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Pass,
    Fail,
    Info,
}

/// One check and what it found.
#[derive(Debug, Serialize)]
pub(crate) struct Check {
    name: String,
    status: Status,
    detail: String,
}

impl Check {
    /// Whether the check failed.
    pub(crate) fn is_failure(&self) -> bool {
        self.status == Status::Fail
    }

    pub(crate) fn new(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status,
            detail: detail.into(),
        }
    }
}

/// Writes `checks` as aligned text or JSON to stdout.
pub(crate) fn print_checks(checks: &[Check], format: OutputFormat) -> anyhow::Result<()> {
    let text = match format {
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(checks)?;
            text.push('\n');
            text
        }
        OutputFormat::Text => {
            let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
            checks
                .iter()
                .map(|c| {
                    let status = match c.status {
                        Status::Pass => "PASS",
                        Status::Fail => "FAIL",
                        Status::Info => "INFO",
                    };
                    format!("{status}  {:<width$}  {}\n", c.name, c.detail)
                })
                .collect()
        }
    };
    output::write_data(None, text.as_bytes())
}

/// An HTTP answer.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    took: Duration,
}

struct Prober {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    args: ProbeArgs,
}

/// Runs `payloadctl probe`.
pub(crate) fn run(args: ProbeArgs) -> anyhow::Result<Outcome> {
    let base = args.url.trim_end_matches('/').to_owned();
    let uri: Uri = base
        .parse()
        .with_context(|| format!("`{base}` is not a URL; give one like http://127.0.0.1:8888"))?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => {}
        Some("https") => bail!(
            "https endpoints are not supported by probe yet; probe the server behind the \
             TLS proxy over http, or check it with the Web UI"
        ),
        _ => bail!("`{base}` is not an http:// URL; give one like http://127.0.0.1:8888"),
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let prober = Prober {
        client: Client::builder(TokioExecutor::new()).build(connector),
        base,
        args,
    };
    let checks = runtime()?.block_on(prober.run());
    print_checks(&checks, prober.args.output)?;
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    output::note(&if failed == 0 {
        format!("{}: all checks passed", prober.base)
    } else {
        format!(
            "{}: {failed} of {} checks failed",
            prober.base,
            checks.len()
        )
    });
    Ok(Outcome::failed_if(failed > 0))
}

impl Prober {
    async fn run(&self) -> Vec<Check> {
        let mut checks = vec![self.preflight().await];
        let original = test_payload();
        let (encode, encoded) = self.encode(&original).await;
        checks.push(encode);
        let mut took = encoded.as_ref().map(|(_, took)| *took);
        match encoded {
            Some((encoded, _)) => {
                let (decode, answer) = self.decode(&encoded, &original).await;
                checks.push(decode);
                if let Some(answer) = answer {
                    checks.push(self.cors_answer(&answer));
                    took = took.map(|t| (t, answer.took)).map(|(e, d)| e + d);
                    checks.push(Check::new(
                        "latency",
                        Status::Info,
                        format!(
                            "encode + decode round trip {:.1} ms (decode alone {:.1} ms); the Web UI \
                             makes one decode request per payload field, serially",
                            ms(took.unwrap_or_default()),
                            ms(answer.took)
                        ),
                    ));
                }
            }
            None => checks.push(Check::new(
                "decode",
                Status::Fail,
                "not tried: encode failed",
            )),
        }
        if self.args.auth.is_some() {
            checks.push(self.auth().await);
        }
        checks.push(self.healthz().await);
        checks
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<Answer> {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(body))
            .with_context(|| format!("cannot build a request to {url}"))?;
        let started = Instant::now();
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                anyhow::anyhow!(
                    "cannot reach {url}: {}; is the server running there?",
                    payload_converter::error_text(&e)
                )
            })?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("cannot read the answer from {url}: {e}"))?
                .to_bytes();
            Ok::<_, anyhow::Error>(Answer {
                status,
                headers,
                body,
                took: started.elapsed(),
            })
        };
        let timeout = Duration::from_secs(self.args.timeout);
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| anyhow::anyhow!("{url} did not answer within {timeout:?}"))?
    }

    /// Headers of a codec call, as the CLI and UI send them.
    fn post_headers(&self, with_auth: bool) -> Vec<(&str, &str)> {
        let mut headers = vec![
            ("content-type", "application/json"),
            ("x-namespace", self.args.namespace.as_str()),
            ("origin", self.args.origin.as_str()),
        ];
        if with_auth && let Some(auth) = &self.args.auth {
            headers.push(("authorization", auth.as_str()));
        }
        headers
    }

    async fn preflight(&self) -> Check {
        const NAME: &str = "cors-preflight";
        let mut wanted = vec!["content-type", "x-namespace"];
        if self.args.auth.is_some() {
            wanted.push("authorization");
        }
        let requested = wanted.join(",");
        let url = format!("{}/decode", self.base);
        let headers = [
            ("origin", self.args.origin.as_str()),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", requested.as_str()),
        ];
        let answer = match self
            .send(Method::OPTIONS, &url, &headers, Bytes::new())
            .await
        {
            Ok(answer) => answer,
            Err(err) => return Check::new(NAME, Status::Fail, err.to_string()),
        };
        let fix = format!(
            "the Web UI at {} cannot call this server: allow that origin in the server's CORS \
             settings",
            self.args.origin
        );
        if !answer.status.is_success() {
            return Check::new(
                NAME,
                Status::Fail,
                format!("OPTIONS {url} answered {}; {fix}", answer.status),
            );
        }
        if let Err(problem) = self.allows_origin(&answer.headers) {
            return Check::new(NAME, Status::Fail, format!("{problem}; {fix}"));
        }
        let methods = header_list(&answer.headers, "access-control-allow-methods");
        if !methods.iter().any(|m| m == "post" || m == "*") {
            return Check::new(
                NAME,
                Status::Fail,
                format!("the preflight does not allow POST (allowed: {methods:?}); {fix}"),
            );
        }
        let allowed = header_list(&answer.headers, "access-control-allow-headers");
        let missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|h| !allowed.iter().any(|a| a == h || a == "*"))
            .collect();
        if !missing.is_empty() {
            return Check::new(
                NAME,
                Status::Fail,
                format!(
                    "the preflight does not allow the request headers {}; {fix}",
                    missing.join(", ")
                ),
            );
        }
        Check::new(
            NAME,
            Status::Pass,
            format!(
                "OPTIONS {url} from {}: {}, allows the origin, POST and {requested}",
                self.args.origin, answer.status
            ),
        )
    }

    /// Whether the answer's Access-Control-Allow-Origin lets the origin in.
    fn allows_origin(&self, headers: &HeaderMap) -> Result<(), String> {
        match headers
            .get("access-control-allow-origin")
            .map(HeaderValue::to_str)
        {
            None => Err("no Access-Control-Allow-Origin header in the answer".to_owned()),
            Some(Ok(value)) if value == "*" || value == self.args.origin => Ok(()),
            Some(value) => Err(format!(
                "Access-Control-Allow-Origin is {value:?}, not {:?} or \"*\"",
                self.args.origin
            )),
        }
    }

    async fn encode(&self, original: &Payload) -> (Check, Option<(Payload, Duration)>) {
        const NAME: &str = "encode";
        let url = format!("{}/encode", self.base);
        let answer = match self.call(&url, original, true).await {
            Ok(answer) => answer,
            Err(err) => return (Check::new(NAME, Status::Fail, err), None),
        };
        let (payload, took) = answer;
        if payload == *original {
            return (
                Check::new(
                    NAME,
                    Status::Fail,
                    format!(
                        "POST {url} returned the payload unchanged: the server's codec chain for \
                         namespace `{}` does not encode; configure a chain (e.g. encryption) for it",
                        self.args.namespace
                    ),
                ),
                None,
            );
        }
        let check = Check::new(
            NAME,
            Status::Pass,
            format!(
                "POST {url}: 200, json/plain payload encoded as {}",
                payload.encoding().unwrap_or("(no encoding)")
            ),
        );
        (check, Some((payload, took)))
    }

    async fn decode(&self, encoded: &Payload, original: &Payload) -> (Check, Option<Answer>) {
        const NAME: &str = "decode";
        let url = format!("{}/decode", self.base);
        let body = body_of(encoded);
        let answer = match self
            .send(Method::POST, &url, &self.post_headers(true), body)
            .await
        {
            Ok(answer) => answer,
            Err(err) => return (Check::new(NAME, Status::Fail, err.to_string()), None),
        };
        let check = match single_payload(&url, &answer, self.args.auth.is_some()) {
            Ok(payload) if payload == *original => Check::new(
                NAME,
                Status::Pass,
                format!("POST {url}: 200, the test payload came back unchanged"),
            ),
            Ok(_) => Check::new(
                NAME,
                Status::Fail,
                format!(
                    "POST {url} did not return the payload that was encoded: the server's decode \
                     does not undo its encode (different keys or chains behind a load balancer?)"
                ),
            ),
            Err(err) => Check::new(NAME, Status::Fail, err),
        };
        (check, Some(answer))
    }

    /// POSTs one payload and reads one payload back.
    async fn call(
        &self,
        url: &str,
        payload: &Payload,
        with_auth: bool,
    ) -> Result<(Payload, Duration), String> {
        let answer = self
            .send(
                Method::POST,
                url,
                &self.post_headers(with_auth),
                body_of(payload),
            )
            .await
            .map_err(|e| e.to_string())?;
        single_payload(url, &answer, self.args.auth.is_some()).map(|p| (p, answer.took))
    }

    fn cors_answer(&self, answer: &Answer) -> Check {
        const NAME: &str = "cors-answer";
        match self.allows_origin(&answer.headers) {
            Ok(()) => Check::new(
                NAME,
                Status::Pass,
                format!("the decode answer allows {}", self.args.origin),
            ),
            Err(problem) => Check::new(
                NAME,
                Status::Fail,
                format!(
                    "{problem}: a browser at {} discards the answer; allow that origin in the \
                     server's CORS settings",
                    self.args.origin
                ),
            ),
        }
    }

    async fn auth(&self) -> Check {
        const NAME: &str = "auth";
        let url = format!("{}/encode", self.base);
        match self
            .send(
                Method::POST,
                &url,
                &self.post_headers(false),
                body_of(&test_payload()),
            )
            .await
        {
            Ok(answer) if matches!(answer.status.as_u16(), 401 | 403) => Check::new(
                NAME,
                Status::Info,
                format!(
                    "a request without --auth is refused ({}), with it accepted",
                    answer.status
                ),
            ),
            Ok(answer) => Check::new(
                NAME,
                Status::Info,
                format!(
                    "a request without credentials was answered {}: the server does not require \
                     them for namespace `{}`",
                    answer.status, self.args.namespace
                ),
            ),
            Err(err) => Check::new(NAME, Status::Info, err.to_string()),
        }
    }

    async fn healthz(&self) -> Check {
        const NAME: &str = "healthz";
        let Ok(uri) = self.base.parse::<Uri>() else {
            return Check::new(NAME, Status::Info, "not tried");
        };
        let Some(authority) = uri.authority() else {
            return Check::new(NAME, Status::Info, "not tried");
        };
        let url = format!("http://{authority}/healthz");
        match self.send(Method::GET, &url, &[], Bytes::new()).await {
            Ok(answer) if answer.status.is_success() => {
                Check::new(NAME, Status::Info, format!("GET {url}: {}", answer.status))
            }
            Ok(answer) => Check::new(
                NAME,
                Status::Info,
                format!("GET {url}: {} (no health endpoint there)", answer.status),
            ),
            Err(err) => Check::new(NAME, Status::Info, err.to_string()),
        }
    }
}

/// The payload the probe sends: recognizable, different every run.
fn test_payload() -> Payload {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    Payload::with_encoding(
        "json/plain",
        format!("\"payloadctl probe {nanos}\"").into_bytes(),
    )
}

fn body_of(payload: &Payload) -> Bytes {
    let body = Payloads {
        payloads: vec![payload.clone()],
    };
    Bytes::from(
        serde_json::to_vec(&body).expect("invariant: a Payloads always serializes to proto3 JSON"),
    )
}

/// The one payload of a 200 answer, or what is wrong with the answer.
fn single_payload(url: &str, answer: &Answer, sent_auth: bool) -> Result<Payload, String> {
    let status = answer.status;
    if matches!(status.as_u16(), 401 | 403) {
        let hint = if sent_auth {
            "the credentials given with --auth were refused; check the token and its permissions"
        } else {
            "the server requires credentials: pass --auth \"Bearer TOKEN\""
        };
        return Err(format!("POST {url} answered {status}: {hint}"));
    }
    if status != StatusCode::OK {
        let body: String = String::from_utf8_lossy(&answer.body)
            .chars()
            .take(300)
            .collect();
        return Err(format!(
            "POST {url} answered {status} (the CLI and UI need 200): {}",
            body.trim()
        ));
    }
    let payloads: Payloads = serde_json::from_slice(&answer.body).map_err(|e| {
        format!(
            "POST {url} answered 200 but not with a payloads body ({e}): is URL the codec endpoint?"
        )
    })?;
    match <[Payload; 1]>::try_from(payloads.payloads) {
        Ok([payload]) => Ok(payload),
        Err(all) => Err(format!(
            "POST {url} answered {} payloads for 1: the CLI refuses such answers",
            all.len()
        )),
    }
}

/// A comma-separated header as lowercase items.
fn header_list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|item| item.trim().to_ascii_lowercase())
        .filter(|item| !item.is_empty())
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
