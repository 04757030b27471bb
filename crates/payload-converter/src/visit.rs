//! Walking every payload inside a message, so a codec can be applied to a
//! whole `Payloads`, `Failure`, `Header` or `Memo`.
//!
//! `SearchAttributes` deliberately has no implementation: the server indexes
//! search attributes, so they are never encoded.

use std::mem;

use payload_proto::temporal::api::common::v1::{Header, Memo, Payload, Payloads};
use payload_proto::temporal::api::failure::v1::Failure;
use payload_proto::temporal::api::failure::v1::failure::FailureInfo;

use crate::codec::{PayloadCodec, step};
use crate::error::PayloadCodecError;

/// A message that holds payloads a codec should transform.
pub trait VisitPayloads {
    /// Calls `f` on every payload, in a fixed order.
    fn visit_payloads(&mut self, f: &mut dyn FnMut(&mut Payload));
}

impl VisitPayloads for Payload {
    fn visit_payloads(&mut self, f: &mut dyn FnMut(&mut Payload)) {
        f(self);
    }
}

impl VisitPayloads for Vec<Payload> {
    fn visit_payloads(&mut self, f: &mut dyn FnMut(&mut Payload)) {
        self.iter_mut().for_each(f);
    }
}

impl VisitPayloads for Payloads {
    fn visit_payloads(&mut self, f: &mut dyn FnMut(&mut Payload)) {
        self.payloads.visit_payloads(f);
    }
}

impl<T: VisitPayloads> VisitPayloads for Option<T> {
    fn visit_payloads(&mut self, f: &mut dyn FnMut(&mut Payload)) {
        if let Some(inner) = self {
            inner.visit_payloads(f);
        }
    }
}

impl<T: VisitPayloads + ?Sized> VisitPayloads for Box<T> {
    fn visit_payloads(&mut self, f: &mut dyn FnMut(&mut Payload)) {
        (**self).visit_payloads(f);
    }
}

impl VisitPayloads for Header {
    fn visit_payloads(&mut self, f: &mut dyn FnMut(&mut Payload)) {
        self.fields.values_mut().for_each(f);
    }
}

impl VisitPayloads for Memo {
    fn visit_payloads(&mut self, f: &mut dyn FnMut(&mut Payload)) {
        self.fields.values_mut().for_each(f);
    }
}

/// The encoded attributes, the details inside the failure info, then the
/// cause, recursively.
impl VisitPayloads for Failure {
    fn visit_payloads(&mut self, f: &mut dyn FnMut(&mut Payload)) {
        self.encoded_attributes.visit_payloads(f);
        match &mut self.failure_info {
            Some(FailureInfo::ApplicationFailureInfo(info)) => info.details.visit_payloads(f),
            Some(FailureInfo::TimeoutFailureInfo(info)) => {
                info.last_heartbeat_details.visit_payloads(f);
            }
            Some(FailureInfo::CanceledFailureInfo(info)) => info.details.visit_payloads(f),
            Some(FailureInfo::ResetWorkflowFailureInfo(info)) => {
                info.last_heartbeat_details.visit_payloads(f);
            }
            // The other infos carry no payloads.
            _ => {}
        }
        self.cause.visit_payloads(f);
    }
}

/// Encodes every payload in `message` with `codec`, as one batch.
///
/// On error `message` is left unchanged.
pub async fn encode_message<M>(
    codec: &dyn PayloadCodec,
    message: &mut M,
) -> Result<(), PayloadCodecError>
where
    M: VisitPayloads + ?Sized,
{
    transform(codec, message, true).await
}

/// Decodes every payload in `message` with `codec`, as one batch.
///
/// On error `message` is left unchanged.
pub async fn decode_message<M>(
    codec: &dyn PayloadCodec,
    message: &mut M,
) -> Result<(), PayloadCodecError>
where
    M: VisitPayloads + ?Sized,
{
    transform(codec, message, false).await
}

async fn transform<M>(
    codec: &dyn PayloadCodec,
    message: &mut M,
    encode: bool,
) -> Result<(), PayloadCodecError>
where
    M: VisitPayloads + ?Sized,
{
    // Cloning is cheap (payload data is reference-counted) and keeps the
    // message whole if the codec fails.
    let mut batch = Vec::new();
    message.visit_payloads(&mut |p| batch.push(p.clone()));
    if batch.is_empty() {
        return Ok(());
    }
    let out = step(codec, batch, encode, None).await?;
    let mut out = out.into_iter();
    message.visit_payloads(&mut |p| {
        if let Some(next) = out.next() {
            *p = next;
        }
    });
    Ok(())
}

/// Moves every payload out of `message` (leaving defaults), in visit order.
pub fn take_payloads<M: VisitPayloads + ?Sized>(message: &mut M) -> Vec<Payload> {
    let mut out = Vec::new();
    message.visit_payloads(&mut |p| out.push(mem::take(p)));
    out
}

#[cfg(test)]
mod tests {
    use payload_proto::temporal::api::failure::v1::{ApplicationFailureInfo, CanceledFailureInfo};

    use super::*;
    use crate::encoding::PayloadExt;

    fn p(tag: &str) -> Payload {
        Payload::with_encoding("json/plain", tag.as_bytes().to_vec())
    }

    fn payloads(tags: &[&str]) -> Option<Payloads> {
        Some(Payloads {
            payloads: tags.iter().map(|t| p(t)).collect(),
        })
    }

    #[test]
    fn failure_visit_covers_attributes_details_and_causes_in_order() {
        let mut failure = Failure {
            encoded_attributes: Some(p("attrs-1")),
            failure_info: Some(FailureInfo::ApplicationFailureInfo(
                ApplicationFailureInfo {
                    details: payloads(&["d1", "d2"]),
                    ..Default::default()
                },
            )),
            cause: Some(Box::new(Failure {
                encoded_attributes: Some(p("attrs-2")),
                failure_info: Some(FailureInfo::CanceledFailureInfo(CanceledFailureInfo {
                    details: payloads(&["d3"]),
                    ..Default::default()
                })),
                ..Default::default()
            })),
            ..Default::default()
        };
        let seen: Vec<String> = take_payloads(&mut failure)
            .iter()
            .map(|p| String::from_utf8_lossy(&p.data).into_owned())
            .collect();
        assert_eq!(seen, ["attrs-1", "d1", "d2", "attrs-2", "d3"]);
    }

    #[test]
    fn header_and_memo_fields_are_visited() {
        let mut header = Header {
            fields: [("a".to_owned(), p("1")), ("b".to_owned(), p("2"))].into(),
        };
        assert_eq!(take_payloads(&mut header).len(), 2);
        let mut memo = Memo {
            fields: [("m".to_owned(), p("3"))].into(),
        };
        assert_eq!(take_payloads(&mut memo).len(), 1);
    }
}
