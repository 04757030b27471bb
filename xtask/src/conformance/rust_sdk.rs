//! The official Rust SDK (`temporal-sdk-codec` examples) with our codec,
//! and its interop with the Python SDK's samples codec.

use anyhow::{Context, bail};

use super::history::{decode_json_data, json_data_values};
use super::process::spawn;
use super::stack::Stack;
use super::{
    ENCRYPTED_B64, JSON_PLAIN_B64, KEY_ID_B64, PYTHON_QUEUE, RUST_QUEUE, Report, expect_all,
};

/// The official Rust SDK (`temporal-sdk-codec` examples) with our codec:
/// stored encrypted, decoded by the real CLI through our server, and
/// payloads exchanged with the Python SDK's samples codec both ways.
pub(super) fn all(s: &Stack, r: &mut Report) {
    // The worker compresses with zstd before encrypting (when it helps) and
    // decodes either form.
    let mut worker_cmd = s.rust_example("worker");
    worker_cmd.args(["--zstd", "--task-queue", RUST_QUEUE, "--seconds", "600"]);
    let worker = match spawn(
        "rust sdk worker",
        &mut worker_cmd,
        &s.artifacts.join("rust-worker.log"),
    ) {
        Ok(worker) => worker,
        Err(err) => {
            r.check("rust sdk: example worker starts", Err(err));
            return;
        }
    };
    with_our_codec(s, r);
    interop(s, r);
    drop(worker);
}

/// The Rust worker and starter with our codec: stored encrypted (and
/// compressed), decoded by the real CLI through our Codec Server.
fn with_our_codec(s: &Stack, r: &mut Report) {
    let codec = Some(s.codec_url.as_str());
    r.check(
        "rust sdk: starter runs RustGreet on the Rust worker with the AES-GCM keyring codec",
        s.rust_start("conf-rust-greet", "RustGreet", RUST_QUEUE, "Kyoto-8", &[])
            .and_then(|out| expect_all(&out, &[r#"result: "Hello from Rust, Kyoto-8!""#], &[])),
    );
    r.check(
        "rust sdk: the history is stored encrypted under test-key-id",
        s.show("conf-rust-greet", None, &["-o", "json"])
            .and_then(|raw| {
                expect_all(&raw, &[ENCRYPTED_B64, KEY_ID_B64], &[JSON_PLAIN_B64])?;
                expect_all(&decode_json_data(&raw), &[], &["Kyoto-8"])?;
                let count = raw.matches(ENCRYPTED_B64).count();
                Ok(format!(
                    "{count} binary/encrypted payloads, none json/plain, no plaintext"
                ))
            }),
    );
    r.check(
        "rust sdk: CLI decodes the Rust worker's history through our Codec Server",
        s.show("conf-rust-greet", codec, &["-o", "json"])
            .and_then(|out| {
                expect_all(
                    &decode_json_data(&out),
                    &["\"Kyoto-8\"", "\"Hello from Rust, Kyoto-8!\""],
                    &[],
                )
            }),
    );
    let long = "Reykjavik-2 ".repeat(200);
    r.check(
        "rust sdk: zstd then encrypt: stored compressed, decoded by the CLI",
        rust_zstd(s, &long),
    );
}

/// Interop with the Python SDK and the samples' codec, same key, both ways.
fn interop(s: &Stack, r: &mut Report) {
    let python_worker = s.python_worker("120", "python-worker-rust-interop.log");
    r.check(
        "interop: Rust starter runs the Python worker's Greet (each decodes the other's payloads)",
        python_worker.and_then(|mut python| {
            let out = s.rust_start(
                "conf-rust-to-python",
                "Greet",
                PYTHON_QUEUE,
                "Nairobi-6",
                &[],
            );
            let _ = python.child.kill();
            expect_all(&out?, &[r#"result: "Hello, Nairobi-6!""#], &[])
        }),
    );
    r.check(
        "interop: Python client (zstd+encrypt) runs the Rust worker's RustGreet",
        s.python_start(
            "conf-python-to-rust",
            "RustGreet",
            RUST_QUEUE,
            r#"["Quito-1"]"#,
            &["--codec", "zstd+encrypt"],
        )
        .and_then(|out| expect_all(&out, &[r#""Hello from Rust, Quito-1!""#], &[])),
    );
    r.check(
        "interop: both cross-SDK histories are stored encrypted and the CLI decodes them",
        cross_sdk_histories(s),
    );
}

/// The Rust starter with `--zstd` and a 2.4 KB input: every stored payload
/// is much smaller than the input, and the CLI shows the input in full.
fn rust_zstd(s: &Stack, long: &str) -> anyhow::Result<String> {
    let out = s.rust_start("conf-rust-zstd", "RustGreet", RUST_QUEUE, long, &["--zstd"])?;
    expect_all(&out, &["Hello from Rust, Reykjavik-2"], &[])?;
    let raw = s.show("conf-rust-zstd", None, &["-o", "json"])?;
    expect_all(&raw, &[ENCRYPTED_B64], &[])?;
    expect_all(&decode_json_data(&raw), &[], &["Reykjavik-2"])?;
    let largest = json_data_values(&raw)
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0);
    if largest * 4 > long.len() {
        bail!(
            "a stored payload has {largest} bytes for a {} byte input: not compressed",
            long.len()
        );
    }
    let decoded = s.show("conf-rust-zstd", Some(&s.codec_url), &["-o", "json"])?;
    expect_all(&decode_json_data(&decoded), &[long.trim_end()], &[])?;
    Ok(format!(
        "largest stored payload {largest} bytes for a {} byte input; decoded in full",
        long.len()
    ))
}

/// The histories of the cross-SDK workflows: stored encrypted, decoded by
/// the CLI through our server.
fn cross_sdk_histories(s: &Stack) -> anyhow::Result<String> {
    let cases = [
        ("conf-rust-to-python", "Nairobi-6", "Hello, Nairobi-6!"),
        (
            "conf-python-to-rust",
            "Quito-1",
            "Hello from Rust, Quito-1!",
        ),
    ];
    for (id, input, result) in cases {
        let raw = s.show(id, None, &["-o", "json"])?;
        expect_all(&raw, &[ENCRYPTED_B64], &[])?;
        expect_all(&decode_json_data(&raw), &[], &[input])
            .with_context(|| format!("{id} stored in clear"))?;
        let decoded = s.show(id, Some(&s.codec_url), &["-o", "json"])?;
        expect_all(&decode_json_data(&decoded), &[input, result], &[])
            .with_context(|| format!("{id} through the Codec Server"))?;
    }
    Ok("encrypted at rest; input and result decoded for both".to_owned())
}
