//! The checks of a conformance run, by what they exercise: the Python SDK's
//! workflows, the real CLI with and without our Codec Server, auth, and the
//! Web UI in Chromium. The Rust SDK's are in `rust_sdk.rs`, external
//! storage's in `storage.rs`, envelope encryption's in `kms.rs`.

use std::fs;

use anyhow::bail;

use super::history::decode_json_data;
use super::process::text;
use super::stack::Stack;
use super::{Report, TOKEN, expect_all, kms, rust_sdk, storage};

/// Every check, in order (later ones read what earlier ones wrote).
pub(super) fn all(s: &Stack) -> Report {
    let mut r = Report::default();
    python(s, &mut r);
    cli(s, &mut r);
    auth(s, &mut r);
    rust_sdk::all(s, &mut r);
    browser(s, &mut r);
    storage::all(s, &mut r);
    kms::all(s, &mut r);
    r
}

/// Workflows written by the real Python SDK with the samples' codec.
fn python(s: &Stack, r: &mut Report) {
    r.check(
        "python: encrypted greet workflow",
        s.python_run("conf-greet", "greet", r#"["Zanzibar-7"]"#, &[]),
    );
    r.check(
        "python: zstd then encrypt, rotated old key",
        s.python_run(
            "conf-zstd-old",
            "greet",
            r#"["Ostrava-3"]"#,
            &["--codec", "zstd+encrypt", "--key-id", "rotated-old-key"],
        ),
    );
    r.check(
        "python: Go-style zlib then encrypt",
        s.python_run(
            "conf-zlib",
            "greet",
            r#"["Lisbon-9"]"#,
            &["--codec", "zlib+encrypt"],
        ),
    );
    r.check(
        "python: many arguments",
        s.python_run(
            "conf-many",
            "many",
            r#"["alpha-arg", 4242, {"nested": "gamma-val"}, [1, 2, 3], true]"#,
            &[],
        ),
    );
    r.check(
        "python: failure with encoded attributes and details",
        s.python_run(
            "conf-fail",
            "fail",
            r#"["quokka-reason"]"#,
            &["--encoded-failures"],
        ),
    );
}

/// The real CLI, without and with our Codec Server.
fn cli(s: &Stack, r: &mut Report) {
    let codec = Some(s.codec_url.as_str());
    r.check(
        "cli: show without codec endpoint reveals nothing",
        s.show("conf-greet", None, &[])
            .and_then(|out| expect_all(&out, &["binary/encrypted"], &["Zanzibar-7"])),
    );
    r.check(
        "cli: show with codec endpoint decodes input and result",
        s.show("conf-greet", codec, &["-o", "json"])
            .and_then(|out| {
                expect_all(
                    &decode_json_data(&out),
                    &["\"Zanzibar-7\"", "\"Hello, Zanzibar-7!\""],
                    &[],
                )
            }),
    );
    r.check(
        "cli: zstd inside encryption under the rotated key decodes",
        s.show("conf-zstd-old", codec, &[])
            .and_then(|out| expect_all(&out, &["Hello, Ostrava-3!"], &["binary/encrypted"])),
    );
    r.check(
        "cli: Go zlib inside encryption decodes",
        s.show("conf-zlib", codec, &[])
            .and_then(|out| expect_all(&out, &["Hello, Lisbon-9!"], &["binary/encrypted"])),
    );
    r.check(
        "cli: many arguments decode in order",
        s.show("conf-many", codec, &["-o", "json"]).and_then(|out| {
            expect_all(
                &decode_json_data(&out),
                &["\"alpha-arg\"", "4242", "gamma-val", "[1,2,3]", "true"],
                &[],
            )
        }),
    );
    r.check(
        "cli: failure message (encoded attributes) and details decode",
        s.show("conf-fail", codec, &["-o", "json"]).and_then(|out| {
            expect_all(
                &decode_json_data(&out),
                &[
                    r#""message":"refused: quokka-reason""#,
                    r#"{"detail":"quokka-reason"}"#,
                ],
                &[],
            )
        }),
    );
    r.check(
        "cli: start --input encodes through /encode; the Python worker decrypts it",
        cli_start(s),
    );
}

/// Auth: the same history through a bearer-protected server.
fn auth(s: &Stack, r: &mut Report) {
    r.check(
        "cli: --codec-auth with the right token decodes",
        s.show(
            "conf-greet",
            Some(&s.secured_url),
            &["--codec-auth", &format!("Bearer {TOKEN}")],
        )
        .and_then(|out| expect_all(&out, &["Hello, Zanzibar-7!"], &[])),
    );
    r.check(
        "cli: without the token the server refuses and nothing is decoded",
        s.show("conf-greet", Some(&s.secured_url), &[])
            .and_then(|out| expect_all(&out, &[], &["Hello, Zanzibar-7!"])),
    );
}

/// The real Web UI in a real browser.
fn browser(s: &Stack, r: &mut Report) {
    r.check(
        "browser: Web UI workflow page shows decoded input and result",
        s.browser_dom("conf-greet", false)
            .and_then(|dom| expect_all(&dom, &["Zanzibar-7", "Hello, Zanzibar-7!"], &[])),
    );
    r.check(
        "browser: Web UI shows the decoded failure message",
        s.browser_dom("conf-fail", false)
            .and_then(|dom| expect_all(&dom, &["refused: quokka-reason"], &[])),
    );
    r.check(
        "browser: screenshot of the decoded workflow page",
        s.browser_dom("conf-greet", true).and_then(|_| {
            let png = s.artifacts.join("conf-greet.png");
            let size = fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
            if size > 10_000 {
                Ok(format!("{} ({size} bytes)", png.display()))
            } else {
                bail!("no screenshot at {}", png.display())
            }
        }),
    );
}

/// `temporal workflow start --input` through our /encode, a Python worker
/// that decrypts it, and the raw history stored encrypted.
fn cli_start(s: &Stack) -> anyhow::Result<String> {
    let start = s.temporal(&[
        "workflow",
        "start",
        "-w",
        "conf-cli-start",
        "--type",
        "Greet",
        "--task-queue",
        "payloadkit-conformance",
        "--input",
        "\"Marrakesh-5\"",
        "--codec-endpoint",
        &s.codec_url,
    ])?;
    if !start.status.success() {
        bail!("temporal workflow start failed: {}", text(&start));
    }
    let mut worker = s.python_worker("20", "python-worker.log")?;
    let result = s.temporal(&[
        "workflow",
        "result",
        "-w",
        "conf-cli-start",
        "--codec-endpoint",
        &s.codec_url,
    ]);
    let _ = worker.child.kill();
    let result = text(&result?);
    expect_all(&result, &["Hello, Marrakesh-5!"], &[])?;
    let raw = s.show("conf-cli-start", None, &["-o", "json"])?;
    expect_all(&raw, &["YmluYXJ5L2VuY3J5cHRlZA=="], &[])?; // base64 of binary/encrypted
    expect_all(&decode_json_data(&raw), &[], &["Marrakesh-5"])?;
    Ok("input stored encrypted; worker answered \"Hello, Marrakesh-5!\"".to_owned())
}
