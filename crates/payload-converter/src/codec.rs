//! The payload codec trait and the codec chain.
//!
//! A codec transforms a batch of payloads into a batch of the same size and
//! order (compression, encryption). It is async and fallible, and works on
//! whole batches so that an implementation may process them in one go (a
//! remote codec sends one request per batch). Codecs are composed in a
//! [`CodecChain`] with the SDK ordering: encoding runs the codecs last to
//! first, decoding first to last, so the first codec is the outermost layer
//! of an encoded payload.
//!
//! [`PayloadCodec::decode_within`] and [`PayloadCodec::encode_within`] run
//! the same transforms under a [`Budget`]: codecs that allocate new buffers
//! charge them first, so a decompression bomb is refused before it takes
//! the memory it asks for, and a cancelled call stops.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use payload_proto::temporal::api::common::v1::Payload;

use crate::budget::Budget;
use crate::error::{CountMismatch, PayloadCodecError};

/// A boxed, sendable future, the return type of [`PayloadCodec`] methods
/// (so the trait can be used as `dyn PayloadCodec`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Result of a codec operation on a batch.
pub type CodecResult = Result<Vec<Payload>, PayloadCodecError>;

/// Encodes and decodes batches of payloads.
///
/// Implementations must return exactly one payload per input payload, in the
/// same order, and should pass payloads they do not own (another encoding)
/// through unchanged on decode.
pub trait PayloadCodec: Send + Sync + std::fmt::Debug {
    /// A short name for error messages and logs, e.g. `aes-256-gcm`.
    fn name(&self) -> &str;
    /// Encodes a batch.
    fn encode(&self, payloads: Vec<Payload>) -> BoxFuture<'_, CodecResult>;
    /// Decodes a batch.
    fn decode(&self, payloads: Vec<Payload>) -> BoxFuture<'_, CodecResult>;

    /// Encodes a batch, charging the buffers it makes to `budget` before
    /// allocating them. The default ignores the budget and calls
    /// [`encode`](Self::encode): a codec whose output can be much larger
    /// than its input must override it.
    fn encode_within<'a>(
        &'a self,
        payloads: Vec<Payload>,
        budget: &'a Budget,
    ) -> BoxFuture<'a, CodecResult> {
        let _ = budget;
        self.encode(payloads)
    }

    /// Decodes a batch, charging the buffers it makes to `budget` before
    /// allocating them (see [`encode_within`](Self::encode_within)).
    /// Decompressing codecs override it; the default calls
    /// [`decode`](Self::decode).
    fn decode_within<'a>(
        &'a self,
        payloads: Vec<Payload>,
        budget: &'a Budget,
    ) -> BoxFuture<'a, CodecResult> {
        let _ = budget;
        self.decode(payloads)
    }
}

impl<C: PayloadCodec + ?Sized> PayloadCodec for Arc<C> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn encode(&self, payloads: Vec<Payload>) -> BoxFuture<'_, CodecResult> {
        (**self).encode(payloads)
    }

    fn decode(&self, payloads: Vec<Payload>) -> BoxFuture<'_, CodecResult> {
        (**self).decode(payloads)
    }

    fn encode_within<'a>(
        &'a self,
        payloads: Vec<Payload>,
        budget: &'a Budget,
    ) -> BoxFuture<'a, CodecResult> {
        (**self).encode_within(payloads, budget)
    }

    fn decode_within<'a>(
        &'a self,
        payloads: Vec<Payload>,
        budget: &'a Budget,
    ) -> BoxFuture<'a, CodecResult> {
        (**self).decode_within(payloads, budget)
    }
}

/// Codecs applied in the SDK order, checking that each keeps the batch size.
#[derive(Clone, Debug, Default)]
pub struct CodecChain {
    codecs: Vec<Arc<dyn PayloadCodec>>,
    name: String,
}

impl CodecChain {
    /// A chain of `codecs`; the first is the outermost layer on the wire.
    pub fn new(codecs: Vec<Arc<dyn PayloadCodec>>) -> Self {
        let name = codecs
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(" > ");
        Self { codecs, name }
    }

    /// The codecs, outermost first.
    pub fn codecs(&self) -> &[Arc<dyn PayloadCodec>] {
        &self.codecs
    }

    /// Whether the chain has no codecs (encode and decode are the identity).
    pub fn is_empty(&self) -> bool {
        self.codecs.is_empty()
    }
}

/// Runs one codec over a batch and checks it kept the batch size.
pub(crate) async fn step(
    codec: &dyn PayloadCodec,
    payloads: Vec<Payload>,
    encode: bool,
    budget: Option<&Budget>,
) -> CodecResult {
    let expected = payloads.len();
    let out = match (encode, budget) {
        (true, None) => codec.encode(payloads).await?,
        (false, None) => codec.decode(payloads).await?,
        (true, Some(budget)) => codec.encode_within(payloads, budget).await?,
        (false, Some(budget)) => codec.decode_within(payloads, budget).await?,
    };
    CountMismatch::check(codec.name(), expected, out)
}

impl PayloadCodec for CodecChain {
    fn name(&self) -> &str {
        &self.name
    }

    fn encode(&self, payloads: Vec<Payload>) -> BoxFuture<'_, CodecResult> {
        Box::pin(self.run(payloads, true, None))
    }

    fn decode(&self, payloads: Vec<Payload>) -> BoxFuture<'_, CodecResult> {
        Box::pin(self.run(payloads, false, None))
    }

    fn encode_within<'a>(
        &'a self,
        payloads: Vec<Payload>,
        budget: &'a Budget,
    ) -> BoxFuture<'a, CodecResult> {
        Box::pin(self.run(payloads, true, Some(budget)))
    }

    fn decode_within<'a>(
        &'a self,
        payloads: Vec<Payload>,
        budget: &'a Budget,
    ) -> BoxFuture<'a, CodecResult> {
        Box::pin(self.run(payloads, false, Some(budget)))
    }
}

impl CodecChain {
    /// Every codec in the SDK order for the direction, each under `budget`
    /// when given; between codecs a cancelled budget stops the call.
    async fn run(
        &self,
        mut payloads: Vec<Payload>,
        encode: bool,
        budget: Option<&Budget>,
    ) -> CodecResult {
        let count = self.codecs.len();
        for i in 0..count {
            let codec = &self.codecs[if encode { count - 1 - i } else { i }];
            if let Some(budget) = budget {
                budget.check()?;
            }
            payloads = step(&**codec, payloads, encode, budget).await?;
        }
        Ok(payloads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::PayloadExt;
    use crate::error::CodecErrorKind;

    /// Wraps each payload's data in `[tag` … `]` on encode and checks and
    /// strips it on decode, so the order of layers is visible.
    #[derive(Debug)]
    struct Tag(&'static str);

    impl PayloadCodec for Tag {
        fn name(&self) -> &str {
            self.0
        }

        fn encode(&self, payloads: Vec<Payload>) -> BoxFuture<'_, CodecResult> {
            Box::pin(async move {
                Ok(payloads
                    .into_iter()
                    .map(|p| {
                        let data = [self.0.as_bytes(), b"(", &p.data, b")"].concat();
                        Payload::with_encoding(self.0, data)
                    })
                    .collect())
            })
        }

        fn decode(&self, payloads: Vec<Payload>) -> BoxFuture<'_, CodecResult> {
            Box::pin(async move {
                payloads
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let prefix = [self.0.as_bytes(), b"("].concat();
                        let inner = p
                            .data
                            .strip_prefix(prefix.as_slice())
                            .and_then(|d| d.strip_suffix(b")"))
                            .ok_or_else(|| {
                                PayloadCodecError::new(CodecErrorKind::InvalidPayload, "not mine")
                                    .at_index(i)
                            })?;
                        Ok(Payload::with_encoding("inner", inner.to_vec()))
                    })
                    .collect()
            })
        }
    }

    fn chain(codecs: Vec<Arc<dyn PayloadCodec>>) -> CodecChain {
        CodecChain::new(codecs)
    }

    #[tokio::test]
    async fn first_codec_is_the_outermost_layer() {
        let chain = chain(vec![Arc::new(Tag("outer")), Arc::new(Tag("inner"))]);
        let encoded = chain
            .encode(vec![Payload::with_encoding("x", &b"v"[..])])
            .await
            .unwrap();
        assert_eq!(&encoded[0].data[..], b"outer(inner(v))");
        assert_eq!(encoded[0].encoding(), Some("outer"));
        let decoded = chain.decode(encoded).await.unwrap();
        assert_eq!(&decoded[0].data[..], b"v");
        assert_eq!(chain.name(), "outer > inner");
    }

    #[tokio::test]
    async fn decode_errors_keep_the_payload_index() {
        let chain = chain(vec![Arc::new(Tag("t"))]);
        let good = chain
            .encode(vec![Payload::default()])
            .await
            .unwrap()
            .remove(0);
        let err = chain
            .decode(vec![good, Payload::with_encoding("t", &b"junk"[..])])
            .await
            .unwrap_err();
        assert_eq!(err.index(), Some(1));
        assert_eq!(err.to_string(), "payload 1: not mine");
    }

    #[tokio::test]
    async fn empty_chain_is_identity() {
        let payloads = vec![Payload::with_encoding("a", &b"1"[..])];
        let chain = CodecChain::default();
        assert!(chain.is_empty());
        assert_eq!(chain.encode(payloads.clone()).await.unwrap(), payloads);
        assert_eq!(chain.decode(payloads.clone()).await.unwrap(), payloads);
    }
}
