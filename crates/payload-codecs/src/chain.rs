//! [`ChainBuilder`]: compose codecs in the order they are applied when
//! encoding, and get a [`CodecChain`] in the SDK order.
//!
//! A [`CodecChain`] (like every Temporal SDK's chain) lists codecs outermost
//! first: it encodes last to first and decodes first to last. So "compress,
//! then encrypt" is the chain `[encryption, compression]`. The builder hides
//! that inversion: its steps read in encode order.

use std::sync::Arc;

use payload_converter::{CodecChain, PayloadCodec};

use crate::aes_gcm::AesGcmCodec;
use crate::keyring::Keyring;
use crate::zlib::ZlibCodec;
use crate::zstd::ZstdCodec;

/// Builds a [`CodecChain`] from steps given in the order they apply when
/// encoding (the first step touches the original payload; the last step's
/// output goes on the wire).
///
/// ```
/// use std::sync::Arc;
///
/// use payload_codecs::{ChainBuilder, KeyId, Keyring, SecretKey, ZstdCodec};
/// use payload_converter::PayloadCodec;
///
/// let keyring = Arc::new(Keyring::single(KeyId::new("k1")?, SecretKey::generate()?));
/// let chain = ChainBuilder::new()
///     .compress_zstd(ZstdCodec::new())
///     .encrypt(keyring)
///     .build();
/// // Outermost first, as the SDKs list a chain.
/// assert_eq!(chain.name(), "aes-256-gcm > zstd");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct ChainBuilder {
    /// In encode order.
    steps: Vec<Arc<dyn PayloadCodec>>,
}

impl ChainBuilder {
    /// An empty chain (the identity).
    pub fn new() -> Self {
        Self::default()
    }

    /// Next, compress with zstd.
    #[must_use]
    pub fn compress_zstd(self, codec: ZstdCodec) -> Self {
        self.then(codec)
    }

    /// Next, compress with zlib (Go SDK compatible).
    #[must_use]
    pub fn compress_zlib(self, codec: ZlibCodec) -> Self {
        self.then(codec)
    }

    /// Next, encrypt with the active key of `keyring`.
    #[must_use]
    pub fn encrypt(self, keyring: Arc<Keyring>) -> Self {
        self.then(AesGcmCodec::new(keyring))
    }

    /// Next, apply any codec.
    #[must_use]
    pub fn then(self, codec: impl PayloadCodec + 'static) -> Self {
        self.then_arc(Arc::new(codec))
    }

    /// Next, apply a shared codec.
    #[must_use]
    pub fn then_arc(mut self, codec: Arc<dyn PayloadCodec>) -> Self {
        self.steps.push(codec);
        self
    }

    /// The chain, outermost (last step) first.
    pub fn build(self) -> CodecChain {
        let mut codecs = self.steps;
        codecs.reverse();
        CodecChain::new(codecs)
    }
}
