//! Base64 data as the generated code reads it (either alphabet, padding
//! optional), and the same decoding done in place in the body's buffer.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, STANDARD_NO_PAD,
};
use bytes::Bytes;

/// Base64 characters decoded at a time in place (a multiple of 4).
const CHUNK_CHARS: usize = 4096;

/// The bytes a full chunk of [`CHUNK_CHARS`] decodes to.
const RAW: usize = CHUNK_CHARS / 4 * 3;

/// Bytes from base64 as the generated code reads them: either alphabet,
/// padding optional. Into a buffer of the exact size, so that it becomes
/// `Bytes` without another allocation.
pub(super) fn decode_lenient(text: &[u8]) -> Result<Bytes, base64::DecodeSliceError> {
    let unpadded = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    let mut out = vec![0_u8; unpadded.len() / 4 * 3 + (unpadded.len() % 4 * 3 / 4)];
    let len = match STANDARD_LENIENT.decode_slice(text, &mut out) {
        Err(base64::DecodeSliceError::DecodeError(base64::DecodeError::InvalidByte(
            _,
            b'-' | b'_',
        ))) => URL_SAFE_LENIENT.decode_slice(text, &mut out)?,
        other => other?,
    };
    out.truncate(len);
    Ok(Bytes::from(out))
}

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
pub(super) const STANDARD_LENIENT: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// Decodes the standard-alphabet base64 in `text` into its own start and
/// returns the decoded length, or restores `text` and returns `None` if it
/// is not standard base64 (then the caller decodes it the usual way, for
/// the URL-safe alphabet or the exact error).
pub(super) fn decode_in_place(text: &mut [u8]) -> Option<usize> {
    decode_in_place_by(text, CHUNK_CHARS)
}

/// Undoes [`decode_in_place`] for a `text` whose first `decoded` bytes are
/// what it decoded: encodes them back, with padding if the text had it.
pub(super) fn encode_back(text: &mut [u8], decoded: usize) {
    encode_back_by(text, decoded, CHUNK_CHARS);
}

/// [`decode_in_place`] a `chunk` of characters at a time (a multiple of 4,
/// at most [`CHUNK_CHARS`]; the tests use small ones so that short strings
/// cross chunk boundaries).
///
/// Each chunk goes through a stack buffer and its bytes are written behind
/// the text still to be read, since 4 characters give at most 3 bytes.
/// Every chunk but the last must decode to a full 3/4 of its length (no
/// padding inside the text), so the result is exactly what decoding the
/// whole string gives. Undoing is encoding the decoded chunks back, last
/// first: a full chunk of standard base64 encodes back to the very
/// characters it came from.
fn decode_in_place_by(text: &mut [u8], chunk: usize) -> Option<usize> {
    let raw = chunk / 4 * 3;
    let mut out = [0_u8; RAW];
    let out = &mut out[..raw];
    let (mut read, mut written) = (0, 0);
    while read < text.len() {
        let end = (read + chunk).min(text.len());
        let last = end == text.len();
        match STANDARD_LENIENT.decode_slice(&text[read..end], out) {
            Ok(len) if last || len == raw => {
                text[written..written + len].copy_from_slice(&out[..len]);
                written += len;
                read = end;
            }
            _ => {
                encode_back_by(text, written, chunk);
                return None;
            }
        }
    }
    Some(written)
}

/// [`encode_back`] for text decoded by [`decode_in_place_by`] with `chunk`.
fn encode_back_by(text: &mut [u8], decoded: usize, chunk: usize) {
    let raw_len = chunk / 4 * 3;
    let full = decoded / raw_len;
    let rest = decoded - full * raw_len;
    let mut raw = [0_u8; RAW];
    if rest > 0 {
        raw[..rest].copy_from_slice(&text[full * raw_len..decoded]);
        let out = &mut text[full * chunk..];
        let padded = out.len().is_multiple_of(4) && !rest.is_multiple_of(3);
        let engine = if padded { &STANDARD } else { &STANDARD_NO_PAD };
        let _ = engine.encode_slice(&raw[..rest], out);
    }
    for index in (0..full).rev() {
        raw[..raw_len].copy_from_slice(&text[index * raw_len..(index + 1) * raw_len]);
        let at = index * chunk;
        // A full chunk encodes to exactly `chunk` characters.
        let _ = STANDARD.encode_slice(&raw[..raw_len], &mut text[at..at + chunk]);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::body::strategies::data_text;

    /// Small chunks, so that the short strings of the tests cross chunk
    /// boundaries.
    const SMALL: usize = 8;

    proptest! {
        #[test]
        fn in_place_decoding_is_decoding_or_nothing(text in data_text(0..40)) {
            let mut buf = text.clone().into_bytes();
            let whole = STANDARD_LENIENT.decode(&text);
            match decode_in_place_by(&mut buf, SMALL) {
                Some(len) => prop_assert_eq!(&buf[..len], &whole.unwrap()[..]),
                None => {
                    prop_assert!(whole.is_err());
                    prop_assert_eq!(buf, text.into_bytes(), "restored as it came");
                }
            }
        }

        #[test]
        fn encoding_back_undoes_in_place_decoding(text in data_text(0..40)) {
            let mut buf = text.clone().into_bytes();
            if let Some(len) = decode_in_place_by(&mut buf, SMALL) {
                encode_back_by(&mut buf, len, SMALL);
                prop_assert_eq!(buf, text.into_bytes());
            }
        }
    }
}
