//! The `/encode` and `/decode` body: proto3 JSON `{"payloads":[…]}`.
//!
//! Input is parsed leniently (camelCase or snake_case names, either base64
//! alphabet, unknown fields ignored: see `payload-proto`); errors say where
//! the problem is: the JSON position for syntax errors, the payload index
//! for a malformed payload. Output is always `{"payloads":[…]}`, with the
//! array present even when empty.
//!
//! Both directions have a direct path that gives the same results as the
//! generated proto3 JSON code (`pbjson`) with less work, since every
//! `/decode` call goes through them: parsing builds each payload's map and
//! bytes in place, writing puts base64 straight into the answer. Input the
//! direct parser refuses goes through the generated code, so what is
//! accepted and the error messages are exactly the generated code's; tests
//! compare the two.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, STANDARD_NO_PAD,
};
use bytes::Bytes;
use payload_proto::temporal::api::common::v1::{Payload, Payloads};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

use crate::error::ApiError;

const SHAPE: &str = r#"send a JSON object like {"payloads":[{"metadata":{"encoding":"<base64>"},"data":"<base64>"}]}"#;

/// Reads a request body of at most `limit` bytes into one buffer.
///
/// A body that arrives in one piece is used as it is; one in many pieces is
/// copied once into a buffer sized from `Content-Length` (never above
/// `limit`), instead of being collected and then joined, which held every
/// large body twice. A declared length above `limit` is refused before
/// anything is read.
pub(crate) async fn read_body(
    mut body: axum::body::Body,
    declared: Option<usize>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt as _;

    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let mut first: Option<Bytes> = None;
    let mut joined: Option<Vec<u8>> = None;
    let mut total = 0_usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            ApiError::InvalidJson(format!("the request body could not be read: {err}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len();
        if total > limit {
            return Err(ApiError::BodyTooLarge { limit });
        }
        if let Some(buffer) = joined.as_mut() {
            buffer.extend_from_slice(&data);
        } else if let Some(head) = first.take() {
            let capacity = declared.unwrap_or(0).clamp(head.len() + data.len(), limit);
            let mut buffer = Vec::with_capacity(capacity);
            buffer.extend_from_slice(&head);
            buffer.extend_from_slice(&data);
            joined = Some(buffer);
        } else {
            first = Some(data);
        }
    }
    Ok(joined.map_or_else(|| first.unwrap_or_default(), Bytes::from))
}

/// Parses a request body into its payloads, refusing more than `max_payloads`.
///
/// Large `data` strings are decoded from base64 in place, in the body's own
/// buffer (see [`decode_in_place`]): a 2 MiB payload then needs its 2.7 MiB
/// body and nothing more, instead of the body and a second buffer.
pub(crate) fn parse_payloads(body: Bytes, max_payloads: usize) -> Result<Vec<Payload>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidJson(format!(
            "request body is empty; {SHAPE}"
        )));
    }
    let direct = serde_json::from_slice::<Direct<'_>>(&body)
        .ok()
        .and_then(|Direct(parsed)| place_deferred(&body, parsed));
    let (mut payloads, deferred) = match direct {
        Some(parsed) => parsed,
        None => (generated(&body)?, Vec::new()),
    };
    // Data first: a body the generated code refuses gets its error, whatever
    // the payload count.
    if !deferred.is_empty() {
        fill_deferred(body, &mut payloads, deferred)?;
    }
    if payloads.len() > max_payloads {
        return Err(ApiError::TooManyPayloads {
            count: payloads.len(),
            limit: max_payloads,
        });
    }
    Ok(payloads)
}

/// Where in the body a payload's data waits to be decoded: (payload index,
/// byte range of its base64 text).
type Deferred = Vec<(usize, std::ops::Range<usize>)>;

/// The parsed payloads, with the position in `body` of each deferred data
/// string; `None` if a string is not in `body` (which serde_json's borrowed
/// strings always are).
fn place_deferred(
    body: &[u8],
    parsed: Vec<(Payload, Option<&[u8]>)>,
) -> Option<(Vec<Payload>, Deferred)> {
    let base = body.as_ptr() as usize;
    let mut deferred = Vec::new();
    let mut payloads = Vec::with_capacity(parsed.len());
    for (index, (payload, text)) in parsed.into_iter().enumerate() {
        if let Some(text) = text {
            let start = (text.as_ptr() as usize).checked_sub(base)?;
            let end = start
                .checked_add(text.len())
                .filter(|end| *end <= body.len())?;
            deferred.push((index, start..end));
        }
        payloads.push(payload);
    }
    Some((payloads, deferred))
}

/// Decodes the deferred data strings into their payloads.
///
/// In the body's buffer when the body is not shared: the data of a payload
/// that is most of the body keeps the buffer (no copy at all); others are
/// copied out, so the body is not held for small parts of it. A string the
/// in-place decoder refuses (URL-safe alphabet, or invalid) is restored and
/// decoded on its own, which gives the generated code's result or error.
fn fill_deferred(
    body: Bytes,
    payloads: &mut [Payload],
    deferred: Deferred,
) -> Result<(), ApiError> {
    let mut buf = match body.try_into_mut() {
        Ok(buf) => buf,
        Err(shared) => {
            for (index, range) in deferred {
                payloads[index].data =
                    decode_lenient(&shared[range]).map_err(|_| refused(&shared))?;
            }
            return Ok(());
        }
    };
    // (payload index, the text's range, its decoded length)
    let mut decoded: Vec<(usize, std::ops::Range<usize>, usize)> =
        Vec::with_capacity(deferred.len());
    for (index, range) in deferred {
        if let Some(len) = decode_in_place(&mut buf[range.clone()]) {
            decoded.push((index, range, len));
            continue;
        }
        match decode_lenient(&buf[range]) {
            Ok(bytes) => payloads[index].data = bytes,
            Err(_) => {
                // Put the body back as it came, for the generated code's error.
                for (_, range, len) in decoded {
                    encode_back(&mut buf[range], len);
                }
                return Err(refused(&buf));
            }
        }
    }
    let buf = buf.freeze();
    let keep = match decoded.as_slice() {
        [(index, _, len)] if len * 2 >= buf.len() => Some(*index),
        _ => None,
    };
    for (index, range, len) in decoded {
        let range = range.start..range.start + len;
        payloads[index].data = if keep == Some(index) {
            buf.slice(range)
        } else {
            Bytes::copy_from_slice(&buf[range])
        };
    }
    Ok(())
}

/// The payloads as the generated code parses them, or its error explained.
fn generated(body: &[u8]) -> Result<Vec<Payload>, ApiError> {
    serde_json::from_slice::<Payloads>(body)
        .map(|parsed| parsed.payloads)
        .map_err(|err| explain(body, &err))
}

/// The generated code's error for a body it refuses.
fn refused(body: &[u8]) -> ApiError {
    generated(body).err().unwrap_or_else(|| {
        // Not reached: the lenient decoder is the generated code's.
        ApiError::InvalidPayload("a payload's data is not valid base64".to_owned())
    })
}

/// Base64 characters decoded at a time in place (a multiple of 4).
#[cfg(not(test))]
const CHUNK_CHARS: usize = 4096;
/// Small in unit tests, so that short strings cross chunk boundaries.
#[cfg(test)]
const CHUNK_CHARS: usize = 8;

/// The bytes a full chunk decodes to.
const RAW: usize = CHUNK_CHARS / 4 * 3;

/// Data strings at least this long are decoded in place.
#[cfg(not(test))]
const DEFER_CHARS: usize = 64 * 1024;
#[cfg(test)]
const DEFER_CHARS: usize = 1;

/// Decodes the standard-alphabet base64 in `text` into its own start and
/// returns the decoded length, or restores `text` and returns `None` if it
/// is not standard base64 (then the caller decodes it the usual way, for
/// the URL-safe alphabet or the exact error).
///
/// A chunk at a time through a small stack buffer: each chunk's bytes are
/// written behind the text still to be read, since 4 characters give at
/// most 3 bytes. Every chunk but the last must decode to a full 3/4 of its
/// length (no padding inside the text), so the result is exactly what
/// decoding the whole string gives. Undoing is encoding the decoded chunks
/// back, last first: a full chunk of standard base64 encodes back to the
/// very characters it came from.
fn decode_in_place(text: &mut [u8]) -> Option<usize> {
    let mut out = [0_u8; RAW];
    let (mut read, mut written) = (0, 0);
    while read < text.len() {
        let end = (read + CHUNK_CHARS).min(text.len());
        let last = end == text.len();
        match STANDARD_LENIENT.decode_slice(&text[read..end], &mut out) {
            Ok(len) if last || len == RAW => {
                text[written..written + len].copy_from_slice(&out[..len]);
                written += len;
                read = end;
            }
            _ => {
                encode_back(text, written);
                return None;
            }
        }
    }
    Some(written)
}

/// Undoes [`decode_in_place`] for a `text` whose first `decoded` bytes are
/// what it decoded: encodes them back, with padding if the text had it.
fn encode_back(text: &mut [u8], decoded: usize) {
    let full = decoded / RAW;
    let rest = decoded - full * RAW;
    if rest > 0 {
        let mut raw = [0_u8; RAW];
        raw[..rest].copy_from_slice(&text[full * RAW..decoded]);
        let out = &mut text[full * CHUNK_CHARS..];
        let padded = out.len().is_multiple_of(4) && !rest.is_multiple_of(3);
        let engine = if padded { &STANDARD } else { &STANDARD_NO_PAD };
        let _ = engine.encode_slice(&raw[..rest], out);
    }
    let mut raw = [0_u8; RAW];
    for chunk in (0..full).rev() {
        raw.copy_from_slice(&text[chunk * RAW..(chunk + 1) * RAW]);
        let at = chunk * CHUNK_CHARS;
        // A full chunk encodes to exactly CHUNK_CHARS characters.
        let _ = STANDARD.encode_slice(raw, &mut text[at..at + CHUNK_CHARS]);
    }
}

/// Bytes from base64 as the generated code reads them: either alphabet,
/// padding optional. Into a buffer of the exact size, so that it becomes
/// `Bytes` without another allocation.
fn decode_lenient(text: &[u8]) -> Result<Bytes, base64::DecodeSliceError> {
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
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// Turns a parse failure into an error that points at the problem.
fn explain(body: &[u8], err: &serde_json::Error) -> ApiError {
    if err.is_syntax() || err.is_eof() {
        return ApiError::InvalidJson(format!("request body is not valid JSON: {err}"));
    }
    // Valid JSON of the wrong shape, or a malformed field: find where.
    let Ok(value) = serde_json::from_slice::<Json>(body) else {
        return ApiError::InvalidJson(format!("request body is not valid JSON: {err}"));
    };
    let Json::Object(object) = &value else {
        return ApiError::InvalidJson(format!("request body must be a JSON object; {SHAPE}"));
    };
    match object.get("payloads") {
        Some(Json::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                if let Err(item_err) = Payload::deserialize(item) {
                    return ApiError::InvalidPayload(format!("payload {index}: {item_err}"));
                }
            }
            ApiError::InvalidJson(format!("request body is not a Payloads object: {err}"))
        }
        Some(Json::Null) | None => {
            ApiError::InvalidJson(format!("request body is not a Payloads object: {err}"))
        }
        Some(_) => ApiError::InvalidJson(format!("`payloads` must be an array; {SHAPE}")),
    }
}

/// Writes the answer body: `{"payloads":[…]}` in proto3 JSON.
pub(crate) fn write_payloads(payloads: &[Payload]) -> Result<Vec<u8>, serde_json::Error> {
    let estimate: usize = payloads.iter().map(|p| p.data.len() * 4 / 3 + 64).sum();
    let mut out = Vec::with_capacity(estimate + 16);
    out.extend_from_slice(b"{\"payloads\":[");
    for (i, payload) in payloads.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_payload(&mut out, payload)?;
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// One payload as the generated code writes it: fields in proto order,
/// empty ones left out, bytes in standard padded base64.
fn write_payload(out: &mut Vec<u8>, payload: &Payload) -> Result<(), serde_json::Error> {
    if !payload.external_payloads.is_empty() {
        return serde_json::to_writer(&mut *out, payload);
    }
    write_head(out, payload)?;
    if !payload.data.is_empty() {
        write_base64(out, &payload.data);
    }
    out.push(b'}');
    Ok(())
}

/// A payload's JSON up to its data: `{"metadata":{…},"data":` (without the
/// data key when the data is empty). No external payloads.
fn write_head(out: &mut Vec<u8>, payload: &Payload) -> Result<(), serde_json::Error> {
    out.push(b'{');
    if !payload.metadata.is_empty() {
        out.extend_from_slice(b"\"metadata\":{");
        for (i, (key, value)) in payload.metadata.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, key)?;
            out.push(b':');
            write_base64(out, value);
        }
        out.push(b'}');
    }
    if !payload.data.is_empty() {
        if !payload.metadata.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(b"\"data\":");
    }
    Ok(())
}

/// Raw bytes per piece of a streamed answer: 64 KiB of base64 (a multiple
/// of 3, so only the last piece of a payload is padded).
pub(crate) const RAW_PIECE: usize = 48 * 1024;

/// A large answer, written as it is sent: the JSON around the data as text,
/// each payload's data encoded to base64 a piece at a time. A 2 MiB payload
/// is then never held a second time as 2.7 MiB of base64. The bytes are the
/// same as [`write_payloads`]'s, and the length is known in advance, so the
/// answer has a `Content-Length`.
#[derive(Debug)]
pub(crate) struct StreamedAnswer {
    segments: std::collections::VecDeque<Segment>,
    remaining: u64,
    piece: usize,
}

#[derive(Debug)]
enum Segment {
    Text(Bytes),
    Data { bytes: Bytes, at: usize },
}

impl StreamedAnswer {
    /// The answer for `payloads`; data of `piece` bytes or more is streamed.
    pub(crate) fn new(payloads: Vec<Payload>, piece: usize) -> Result<Self, serde_json::Error> {
        let piece = piece.max(3) / 3 * 3;
        let mut segments = std::collections::VecDeque::new();
        let mut text = Vec::with_capacity(256);
        let mut remaining = 0_u64;
        text.extend_from_slice(b"{\"payloads\":[");
        for (i, payload) in payloads.into_iter().enumerate() {
            if i > 0 {
                text.push(b',');
            }
            if !payload.external_payloads.is_empty() || payload.data.len() < piece {
                write_payload(&mut text, &payload)?;
                continue;
            }
            write_head(&mut text, &payload)?;
            text.push(b'"');
            remaining += text.len() as u64;
            segments.push_back(Segment::Text(Bytes::from(std::mem::take(&mut text))));
            remaining += (payload.data.len().div_ceil(3) * 4) as u64;
            segments.push_back(Segment::Data {
                bytes: payload.data,
                at: 0,
            });
            text.extend_from_slice(b"\"}");
        }
        text.extend_from_slice(b"]}");
        remaining += text.len() as u64;
        segments.push_back(Segment::Text(Bytes::from(text)));
        Ok(Self {
            segments,
            remaining,
            piece,
        })
    }

    /// The answer's length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.remaining
    }

    /// The next piece of the answer.
    fn next_piece(&mut self) -> Option<Bytes> {
        loop {
            match self.segments.front_mut()? {
                Segment::Text(text) => {
                    let text = std::mem::take(text);
                    self.segments.pop_front();
                    if !text.is_empty() {
                        return Some(text);
                    }
                }
                Segment::Data { bytes, at } => {
                    if *at >= bytes.len() {
                        self.segments.pop_front();
                        continue;
                    }
                    let end = (*at + self.piece).min(bytes.len());
                    let encoded = STANDARD.encode(&bytes[*at..end]);
                    *at = end;
                    return Some(Bytes::from(encoded));
                }
            }
        }
    }
}

impl hyper::body::Body for StreamedAnswer {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let piece = self.next_piece();
        if let Some(piece) = &piece {
            self.remaining = self.remaining.saturating_sub(piece.len() as u64);
        }
        std::task::Poll::Ready(piece.map(|p| Ok(hyper::body::Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.segments.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

/// `bytes` as a JSON string of standard padded base64.
fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    let written = STANDARD.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
    out.push(b'"');
}

/// The payloads of a body, parsed directly (see the module docs), each
/// with its data text when that is left for [`fill_deferred`].
struct Direct<'de>(Vec<(Payload, Option<&'de [u8]>)>);

impl<'de> Deserialize<'de> for Direct<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Body;
        impl<'de> Visitor<'de> for Body {
            type Value = Direct<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Payloads object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Direct<'de>, A::Error> {
                let mut payloads = None;
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Payloads if payloads.is_none() => {
                            payloads = Some(map.next_value::<DirectList<'de>>()?.0);
                        }
                        Key::Payloads => return Err(de::Error::duplicate_field("payloads")),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Direct(payloads.unwrap_or_default()))
            }
        }
        deserializer.deserialize_map(Body)
    }
}

struct DirectList<'de>(Vec<(Payload, Option<&'de [u8]>)>);

impl<'de> Deserialize<'de> for DirectList<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = DirectList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of payloads")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DirectList<'de>, A::Error> {
                let mut payloads = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(1024));
                while let Some(DirectPayload(payload, text)) = seq.next_element()? {
                    payloads.push((payload, text));
                }
                Ok(DirectList(payloads))
            }
        }
        deserializer.deserialize_seq(List)
    }
}

struct DirectPayload<'de>(Payload, Option<&'de [u8]>);

impl<'de> Deserialize<'de> for DirectPayload<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct One;
        impl<'de> Visitor<'de> for One {
            type Value = DirectPayload<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Payload object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<DirectPayload<'de>, A::Error> {
                let mut payload = Payload::default();
                let mut text = None;
                let (mut metadata, mut data, mut external) = (false, false, false);
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Metadata if !metadata => {
                            metadata = true;
                            payload.metadata = map.next_value::<Metadata>()?.0;
                        }
                        Key::Data if !data => {
                            data = true;
                            match map.next_value::<Data<'de>>()? {
                                Data::Decoded(bytes) => payload.data = bytes,
                                Data::Deferred(deferred) => text = Some(deferred),
                            }
                        }
                        Key::ExternalPayloads if !external => {
                            external = true;
                            payload.external_payloads = map.next_value()?;
                        }
                        Key::Metadata | Key::Data | Key::ExternalPayloads => {
                            return Err(de::Error::custom("duplicate field"));
                        }
                        Key::Payloads | Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(DirectPayload(payload, text))
            }
        }
        deserializer.deserialize_map(One)
    }
}

/// The field names the direct parser knows, in both spellings.
enum Key {
    Payloads,
    Metadata,
    Data,
    ExternalPayloads,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Key, E> {
                Ok(match name {
                    "payloads" => Key::Payloads,
                    "metadata" => Key::Metadata,
                    "data" => Key::Data,
                    "externalPayloads" | "external_payloads" => Key::ExternalPayloads,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(Name)
    }
}

/// A payload's metadata, values decoded from base64 as they are read.
struct Metadata(BTreeMap<String, Bytes>);

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Map;
        impl<'de> Visitor<'de> for Map {
            type Value = Metadata;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of base64 strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let Base64(value) = map.next_value()?;
                    out.insert(key, value);
                }
                Ok(Metadata(out))
            }
        }
        deserializer.deserialize_map(Map)
    }
}

/// Bytes from a base64 string: either alphabet, padding optional (as the
/// generated code accepts).
struct Base64(Bytes);

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = Base64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string")
            }
            // Bytes rather than `str`: base64 is ASCII, so checking the
            // text is UTF-8 first would be wasted (what is not base64 is
            // refused either way).
            fn visit_bytes<E: de::Error>(self, text: &[u8]) -> Result<Base64, E> {
                decode_lenient(text).map(Base64).map_err(E::custom)
            }
        }
        deserializer.deserialize_bytes(Text)
    }
}

/// A payload's data: decoded, or (a long string straight from the body)
/// left for [`fill_deferred`] to decode in place.
enum Data<'de> {
    Decoded(Bytes),
    Deferred(&'de [u8]),
}

impl<'de> Deserialize<'de> for Data<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Data<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, text: &'de [u8]) -> Result<Data<'de>, E> {
                if text.len() >= DEFER_CHARS {
                    Ok(Data::Deferred(text))
                } else {
                    self.visit_bytes(text)
                }
            }
            fn visit_bytes<E: de::Error>(self, text: &[u8]) -> Result<Data<'de>, E> {
                decode_lenient(text).map(Data::Decoded).map_err(E::custom)
            }
        }
        // As for `Base64`: bytes, not `str`.
        deserializer.deserialize_bytes(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `parse_payloads` of a copy of `body`, at most 10 payloads.
    fn parse(body: &[u8]) -> Result<Vec<Payload>, ApiError> {
        parse_payloads(Bytes::copy_from_slice(body), 10)
    }

    fn err(body: &str) -> String {
        parse(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn errors_point_at_the_problem() {
        assert!(err("").contains("request body is empty"));
        assert!(
            err("{\"payloads\": [").contains("line 1 column"),
            "{}",
            err("{\"payloads\": [")
        );
        assert!(err("[1,2]").contains("must be a JSON object"));
        assert!(err("{\"payloads\": 5}").contains("`payloads` must be an array"));
        let bad_b64 = r#"{"payloads":[{"data":"AAAA"},{"data":"***"}]}"#;
        assert!(err(bad_b64).starts_with("payload 1:"), "{}", err(bad_b64));
    }

    #[test]
    fn too_many_payloads_is_refused() {
        let body = format!("{{\"payloads\":[{}]}}", ["{}"; 11].join(","));
        assert!(matches!(
            parse(body.as_bytes()),
            Err(ApiError::TooManyPayloads {
                count: 11,
                limit: 10
            })
        ));
    }

    #[test]
    fn empty_list_is_written_explicitly() {
        assert_eq!(write_payloads(&[]).unwrap(), b"{\"payloads\":[]}");
        let parsed = parse(b"{\"payloads\":[{\"data\":\"AAE=\"}]}").unwrap();
        assert_eq!(
            write_payloads(&parsed).unwrap(),
            b"{\"payloads\":[{\"data\":\"AAE=\"}]}"
        );
    }

    mod direct {
        use proptest::prelude::*;

        use super::*;
        use payload_proto::temporal::api::common::v1::payload::ExternalPayloadDetails;

        fn payload() -> impl Strategy<Value = Payload> {
            (
                prop::collection::btree_map(
                    "[a-z\\-\"\\\\é\\n]{0,12}",
                    prop::collection::vec(any::<u8>(), 0..24),
                    0..4,
                ),
                prop::collection::vec(any::<u8>(), 0..200),
                prop::collection::vec(any::<i64>(), 0..2),
            )
                .prop_map(|(metadata, data, external)| Payload {
                    metadata: metadata
                        .into_iter()
                        .map(|(k, v)| (k, Bytes::from(v)))
                        .collect(),
                    data: Bytes::from(data),
                    external_payloads: external
                        .into_iter()
                        .map(|size_bytes| ExternalPayloadDetails { size_bytes })
                        .collect(),
                })
        }

        fn generated(payloads: &[Payload]) -> Vec<u8> {
            serde_json::to_vec(&Payloads {
                payloads: payloads.to_vec(),
            })
            .unwrap()
        }

        proptest! {
            #[test]
            fn writes_what_the_generated_code_writes(payloads in prop::collection::vec(payload(), 1..4)) {
                // The generated code writes metadata in hash order; ours is
                // sorted by key. Same JSON otherwise, byte for byte.
                let ours = write_payloads(&payloads).unwrap();
                let theirs = generated(&payloads);
                prop_assert_eq!(
                    serde_json::from_slice::<Json>(&ours).unwrap(),
                    serde_json::from_slice::<Json>(&theirs).unwrap()
                );
                if payloads.iter().all(|p| p.metadata.len() < 2) {
                    prop_assert_eq!(ours, theirs);
                }
            }

            #[test]
            fn streamed_answers_are_the_written_answers(
                payloads in prop::collection::vec(payload(), 0..4),
                piece in 3_usize..64,
            ) {
                // Payloads with external parts go through the generated
                // code, which writes metadata in hash order.
                let exact = payloads
                    .iter()
                    .all(|p| p.external_payloads.is_empty() || p.metadata.len() < 2);
                let whole = write_payloads(&payloads).unwrap();
                let mut streamed = StreamedAnswer::new(payloads, piece).unwrap();
                prop_assert_eq!(streamed.len(), whole.len() as u64);
                let mut joined = Vec::new();
                while let Some(part) = streamed.next_piece() {
                    prop_assert!(!part.is_empty());
                    joined.extend_from_slice(&part);
                }
                prop_assert_eq!(
                    serde_json::from_slice::<Json>(&joined).unwrap(),
                    serde_json::from_slice::<Json>(&whole).unwrap()
                );
                if exact {
                    prop_assert_eq!(joined, whole);
                }
            }

            #[test]
            fn reads_what_the_generated_code_reads(payloads in prop::collection::vec(payload(), 0..4)) {
                let body = generated(&payloads);
                prop_assert_eq!(parse(&body).unwrap(), payloads);
            }
        }

        /// Base64 text as clients send it: standard, URL-safe, padded or
        /// not, and now and then broken.
        fn data_text() -> impl Strategy<Value = String> {
            (
                prop::collection::vec(any::<u8>(), 0..40),
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
                        2 => base64::engine::general_purpose::URL_SAFE.encode(&bytes),
                        _ => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes),
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

        /// What the generated code makes of `body`: the payloads or the error.
        fn generated_result(body: &[u8]) -> Result<Vec<Payload>, String> {
            crate::body::generated(body).map_err(|e| e.to_string())
        }

        proptest! {
            #[test]
            fn in_place_decoding_is_decoding_or_nothing(text in data_text()) {
                let mut buf = text.clone().into_bytes();
                let whole = STANDARD_LENIENT.decode(&text);
                match decode_in_place(&mut buf) {
                    Some(len) => prop_assert_eq!(&buf[..len], &whole.unwrap()[..]),
                    None => {
                        prop_assert!(whole.is_err());
                        prop_assert_eq!(buf, text.into_bytes(), "restored as it came");
                    }
                }
            }

            #[test]
            fn encoding_back_undoes_in_place_decoding(text in data_text()) {
                let mut buf = text.clone().into_bytes();
                if let Some(len) = decode_in_place(&mut buf) {
                    encode_back(&mut buf, len);
                    prop_assert_eq!(buf, text.into_bytes());
                }
            }

            #[test]
            fn in_place_bodies_parse_as_the_generated_code_parses(
                texts in prop::collection::vec(data_text(), 0..4),
            ) {
                let items: Vec<String> = texts
                    .iter()
                    .map(|t| format!(r#"{{"metadata":{{"e":"AA=="}},"data":"{t}"}}"#))
                    .collect();
                let body = format!(r#"{{"payloads":[{}]}}"#, items.join(","));
                prop_assert_eq!(
                    parse(body.as_bytes()).map_err(|e| e.to_string()),
                    generated_result(body.as_bytes())
                );
            }
        }

        #[test]
        fn padding_inside_the_text_is_refused_at_a_chunk_end() {
            // In tests a chunk is 8 characters: the first ends in padding.
            for text in ["AAAAAAA=AAAA", "AAAAAA==AAAA", "AAAAAAA="] {
                let body = format!(r#"{{"payloads":[{{"data":"{text}"}}]}}"#);
                assert_eq!(
                    parse(body.as_bytes()).map_err(|e| e.to_string()),
                    generated_result(body.as_bytes()),
                    "{text}"
                );
            }
        }

        #[test]
        fn invalid_data_is_reported_before_the_payload_count() {
            let mut items = vec![r#"{"data":"AAAA"}"#; 10];
            items.push(r#"{"data":"*AAA"}"#);
            let body = format!(r#"{{"payloads":[{}]}}"#, items.join(","));
            let err = parse(body.as_bytes()).unwrap_err().to_string();
            assert_eq!(Err(err), generated_result(body.as_bytes()));
            let body = body.replace("*AAA", "AAAA");
            assert!(matches!(
                parse(body.as_bytes()),
                Err(ApiError::TooManyPayloads {
                    count: 11,
                    limit: 10
                })
            ));
        }

        #[test]
        fn the_data_of_a_large_payload_is_its_body_buffer() {
            let data = vec![7_u8; 3000];
            let body = Bytes::from(format!(
                r#"{{"payloads":[{{"metadata":{{"e":"AA=="}},"data":"{}"}}]}}"#,
                STANDARD.encode(&data)
            ));
            let range = body.as_ptr_range();
            let payloads = parse_payloads(body, 10).unwrap();
            assert_eq!(payloads[0].data, data);
            assert!(range.contains(&payloads[0].data.as_ptr()), "no copy");
        }

        #[test]
        fn accepts_what_the_generated_code_accepts() {
            for body in [
                r#"{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg"},"data":"-_8"}]}"#,
                r#"{"payloads":[{"data":"AAE=","external_payloads":[{"size_bytes":"7"}]}]}"#,
                r#"{"payloads":[{"data":"AAE=","externalPayloads":[{"sizeBytes":7}]}]}"#,
                r#"{"other":1,"payloads":[{"data":"AAE=","unknown":{"x":[1]}}]}"#,
                r#" { "payloads" : [ { "metadata" : { "ab" : "AA==" } } ] } "#,
                r#"{}"#,
            ] {
                let generated = serde_json::from_slice::<Payloads>(body.as_bytes())
                    .unwrap_or_else(|e| panic!("{body}: {e}"))
                    .payloads;
                assert_eq!(parse(body.as_bytes()).unwrap(), generated, "{body}");
            }
        }

        #[test]
        fn refuses_what_the_generated_code_refuses() {
            for body in [
                r#"{"payloads":[{"data":"AAE=","data":"AAE="}]}"#,
                r#"{"payloads":[{"data":"A*E="}]}"#,
                r#"{"payloads":[{"data":5}]}"#,
                r#"{"payloads":[{"metadata":{"k":"%%"}}]}"#,
                r#"{"payloads":[],"payloads":[]}"#,
                r#"{"payloads":null}"#,
            ] {
                assert!(
                    serde_json::from_slice::<Payloads>(body.as_bytes()).is_err(),
                    "{body}"
                );
                assert!(parse(body.as_bytes()).is_err(), "{body}");
            }
        }
    }
}
