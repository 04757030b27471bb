//! Proptest strategies shared by the body's unit tests.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use payload_proto::temporal::api::common::v1::{Payload, Payloads};
use proptest::prelude::*;

/// Payloads with awkward metadata keys, data and external details.
pub(super) fn payload() -> impl Strategy<Value = Payload> {
    test_support::payload(200)
}

/// What the generated code writes for `payloads`.
pub(super) fn generated_body(payloads: &[Payload]) -> Vec<u8> {
    serde_json::to_vec(&Payloads {
        payloads: payloads.to_vec(),
    })
    .unwrap()
}

/// Base64 text of `len` random bytes as clients send it: standard,
/// URL-safe, padded or not, and now and then broken (one character
/// replaced, anywhere).
pub(super) fn data_text(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    (
        prop::collection::vec(any::<u8>(), len),
        0_usize..4,
        prop::option::weighted(
            0.2,
            (
                any::<prop::sample::Index>(),
                prop::sample::select(vec!['*', '=', '-', 'A', ' ']),
            ),
        ),
    )
        .prop_map(|(bytes, style, edit)| {
            let mut text = match style {
                0 => STANDARD.encode(&bytes),
                1 => STANDARD_NO_PAD.encode(&bytes),
                2 => URL_SAFE.encode(&bytes),
                _ => URL_SAFE_NO_PAD.encode(&bytes),
            };
            if let Some((at, c)) = edit
                && !text.is_empty()
            {
                let at = at.index(text.len());
                text.replace_range(at..=at, &c.to_string());
            }
            text
        })
}
