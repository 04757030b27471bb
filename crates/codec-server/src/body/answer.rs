//! The answer: `{"payloads":[…]}` in proto3 JSON, written whole for small
//! answers and streamed, base64 a piece at a time, for large ones.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use payload_proto::temporal::api::common::v1::Payload;

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
    /// What must live as long as the answer is being sent (the memory its
    /// payloads are counted in).
    held: Option<Box<dyn std::any::Any + Send + Sync>>,
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
            held: None,
        })
    }

    /// Keeps `held` until the answer is sent or dropped.
    pub(crate) fn holding(mut self, held: impl std::any::Any + Send + Sync) -> Self {
        self.held = Some(Box::new(held));
        self
    }

    /// The answer's length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.remaining
    }

    /// The next piece of the answer.
    fn next_piece(&mut self) -> Option<Bytes> {
        loop {
            let Some(segment) = self.segments.front_mut() else {
                // Sent: what the payloads were counted in goes back now.
                self.held = None;
                return None;
            };
            match segment {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value as Json;

    use super::*;
    use crate::body::strategies::{generated_body, payload};

    #[test]
    fn an_empty_list_is_written_explicitly() {
        assert_eq!(write_payloads(&[]).unwrap(), b"{\"payloads\":[]}");
        let payload = Payload {
            data: Bytes::from_static(&[0, 1]),
            ..Payload::default()
        };
        assert_eq!(
            write_payloads(&[payload]).unwrap(),
            b"{\"payloads\":[{\"data\":\"AAE=\"}]}"
        );
    }

    #[test]
    fn what_an_answer_holds_lives_until_it_is_sent() {
        let held = std::sync::Arc::new(());
        let payload = Payload {
            data: Bytes::from(vec![1_u8; 10]),
            ..Payload::default()
        };
        let mut answer = StreamedAnswer::new(vec![payload], 3)
            .unwrap()
            .holding(held.clone());
        assert_eq!(std::sync::Arc::strong_count(&held), 2);
        while answer.next_piece().is_some() {}
        assert_eq!(std::sync::Arc::strong_count(&held), 1, "released once sent");
    }

    proptest! {
        #[test]
        fn writes_what_the_generated_code_writes(payloads in prop::collection::vec(payload(), 1..4)) {
            // The generated code writes metadata in hash order; ours is
            // sorted by key. Same JSON otherwise, byte for byte.
            let ours = write_payloads(&payloads).unwrap();
            let theirs = generated_body(&payloads);
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
    }
}
