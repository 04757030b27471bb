//! [`ChainBuilder`]: compose codecs in the order they are applied when
//! encoding, and get a [`CodecChain`] in the SDK order; [`CodecName`] and
//! [`ChainBuilder::from_names`]: the one mapping from the names users write
//! (the Codec Server's `chain`, `payloadctl --chain`) to codecs.
//!
//! A [`CodecChain`] (like every Temporal SDK's chain) lists codecs outermost
//! first: it encodes last to first and decodes first to last. So "compress,
//! then encrypt" is the chain `[encryption, compression]`. The builder hides
//! that inversion: its steps read in encode order.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use payload_converter::{CodecChain, PayloadCodec};

use crate::aes_gcm::AesGcmCodec;
use crate::gzip::GzipCodec;
use crate::keyring::Keyring;
use crate::zlib::ZlibCodec;
use crate::zstd::ZstdCodec;

/// A codec as users name it in a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodecName {
    /// AES-256-GCM with a keyring (`binary/encrypted`).
    Encrypt,
    /// zstd compression (`binary/zstd`).
    Zstd,
    /// Go-compatible zlib compression (`binary/zlib`).
    Zlib,
    /// gzip compression (`binary/gzip`), as the Python external storage
    /// sample writes it.
    Gzip,
}

impl CodecName {
    /// Every name, in the order help texts list them.
    pub const ALL: [CodecName; 4] = [
        CodecName::Encrypt,
        CodecName::Zstd,
        CodecName::Zlib,
        CodecName::Gzip,
    ];

    /// The name as users write it.
    pub fn as_str(self) -> &'static str {
        match self {
            CodecName::Encrypt => "encrypt",
            CodecName::Zstd => "zstd",
            CodecName::Zlib => "zlib",
            CodecName::Gzip => "gzip",
        }
    }
}

impl fmt::Display for CodecName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a codec's.
#[derive(Debug, thiserror::Error)]
#[error("unknown codec `{0}`; the codecs are encrypt, zstd, zlib and gzip")]
pub struct UnknownCodec(String);

impl FromStr for CodecName {
    type Err = UnknownCodec;

    fn from_str(text: &str) -> Result<Self, UnknownCodec> {
        CodecName::ALL
            .into_iter()
            .find(|name| name.as_str() == text)
            .ok_or_else(|| UnknownCodec(text.chars().take(32).collect()))
    }
}

/// A chain of names that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainError {
    /// The chain encrypts but has no keyring: it would write payloads in
    /// the clear. Never a pass-through: an error.
    #[error("the chain names `encrypt` but no keyring was given; give the keyring to encrypt with")]
    EncryptWithoutKeyring,
    /// A codec is named twice.
    #[error("the chain names `{0}` twice; name each codec once")]
    Repeated(CodecName),
}

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

    /// The chain of `names`, **outermost first** (as the Codec Server's
    /// `chain` and `payloadctl --chain` list them: `[encrypt, zstd]`
    /// compresses, then encrypts), with default codec settings. A chain
    /// that encrypts needs `keyring`: without one it is
    /// [`ChainError::EncryptWithoutKeyring`], never a chain that skips
    /// encryption.
    pub fn from_names(
        names: &[CodecName],
        keyring: Option<Arc<Keyring>>,
    ) -> Result<CodecChain, ChainError> {
        let encryption = keyring.map(|k| Arc::new(AesGcmCodec::new(k)) as Arc<dyn PayloadCodec>);
        Self::from_names_with(names, encryption)
    }

    /// [`from_names`](Self::from_names) with `encrypt` meaning `encryption`
    /// (an envelope codec, say, instead of the keyring's). A chain that
    /// encrypts without it is [`ChainError::EncryptWithoutKeyring`].
    pub fn from_names_with(
        names: &[CodecName],
        encryption: Option<Arc<dyn PayloadCodec>>,
    ) -> Result<CodecChain, ChainError> {
        let mut builder = ChainBuilder::new();
        for (at, name) in names.iter().enumerate().rev() {
            if names[..at].contains(name) {
                return Err(ChainError::Repeated(*name));
            }
            builder = match name {
                CodecName::Encrypt => builder.then_arc(
                    encryption
                        .clone()
                        .ok_or(ChainError::EncryptWithoutKeyring)?,
                ),
                CodecName::Zstd => builder.compress_zstd(ZstdCodec::new()),
                CodecName::Zlib => builder.compress_zlib(ZlibCodec::new()),
                CodecName::Gzip => builder.then(GzipCodec::new()),
            };
        }
        Ok(builder.build())
    }

    /// The chain, outermost (last step) first.
    pub fn build(self) -> CodecChain {
        let mut codecs = self.steps;
        codecs.reverse();
        CodecChain::new(codecs)
    }
}

#[cfg(test)]
mod tests {
    use payload_converter::PayloadExt;
    use payload_proto::temporal::api::common::v1::Payload;
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::aes_gcm::ENCODING_ENCRYPTED;
    use crate::test_support::{batch, decode, encode, keyring_ab};
    use crate::zlib::ENCODING_ZLIB;
    use crate::zstd::ENCODING_ZSTD;

    fn compressible() -> Payload {
        Payload::with_encoding("json/plain", "abc".repeat(2000).into_bytes())
    }

    #[test]
    fn names_build_the_chain_outermost_first() {
        let names = [CodecName::Encrypt, CodecName::Zstd];
        let chain = ChainBuilder::from_names(&names, Some(keyring_ab("a"))).unwrap();
        assert_eq!(chain.name(), "aes-256-gcm > zstd");
        let out = encode(&chain, vec![compressible()]);
        assert_eq!(out[0].encoding(), Some(ENCODING_ENCRYPTED));
        assert_eq!(decode(&chain, out).unwrap(), [compressible()]);
        let parsed: Vec<CodecName> = ["encrypt", "zstd", "zlib", "gzip"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(parsed, CodecName::ALL);
        assert_eq!(
            "brotli".parse::<CodecName>().unwrap_err().to_string(),
            "unknown codec `brotli`; the codecs are encrypt, zstd, zlib and gzip"
        );
        let gzip = ChainBuilder::from_names(&[CodecName::Gzip], None).unwrap();
        let out = encode(&gzip, vec![compressible()]);
        assert_eq!(out[0].encoding(), Some(crate::ENCODING_GZIP));
    }

    #[test]
    fn a_chain_that_encrypts_without_a_keyring_is_an_error() {
        for names in [
            &[CodecName::Encrypt][..],
            &[CodecName::Zstd, CodecName::Encrypt],
        ] {
            assert_eq!(
                ChainBuilder::from_names(names, None).unwrap_err(),
                ChainError::EncryptWithoutKeyring
            );
        }
        assert_eq!(
            ChainBuilder::from_names(&[CodecName::Zstd, CodecName::Zstd], None).unwrap_err(),
            ChainError::Repeated(CodecName::Zstd)
        );
        let plain = ChainBuilder::from_names(&[CodecName::Zlib], None).unwrap();
        assert_eq!(plain.name(), "zlib");
    }

    #[test]
    fn compress_then_encrypt_puts_encryption_outermost() {
        let chain = ChainBuilder::new()
            .compress_zstd(ZstdCodec::new())
            .encrypt(keyring_ab("a"))
            .build();
        assert_eq!(chain.name(), "aes-256-gcm > zstd");
        let out = encode(&chain, vec![compressible()]);
        assert_eq!(out[0].encoding(), Some(ENCODING_ENCRYPTED));
        // Peel the encryption only: a zstd payload is inside.
        let inner = decode(&AesGcmCodec::new(keyring_ab("a")), out.clone()).unwrap();
        assert_eq!(inner[0].encoding(), Some(ENCODING_ZSTD));
        assert!(out[0].encoded_len() < compressible().encoded_len() / 10);
        assert_eq!(decode(&chain, out).unwrap(), [compressible()]);
    }

    #[test]
    fn steps_apply_in_the_order_given() {
        let chain = ChainBuilder::new()
            .encrypt(keyring_ab("a"))
            .compress_zlib(ZlibCodec::new().with_always_encode(true))
            .build();
        assert_eq!(chain.name(), "zlib > aes-256-gcm");
        let out = encode(&chain, vec![compressible()]);
        assert_eq!(out[0].encoding(), Some(ENCODING_ZLIB));
        assert_eq!(decode(&chain, out).unwrap(), [compressible()]);
    }

    #[test]
    fn empty_builder_is_the_identity() {
        let chain = ChainBuilder::new().build();
        assert!(chain.is_empty());
        assert_eq!(encode(&chain, vec![compressible()]), [compressible()]);
    }

    #[test]
    fn plain_and_foreign_payloads_survive_decode() {
        let chain = ChainBuilder::new()
            .compress_zstd(ZstdCodec::new())
            .compress_zlib(ZlibCodec::new())
            .encrypt(keyring_ab("a"))
            .build();
        let foreign = vec![
            compressible(),
            Payload::with_encoding("binary/gzip", &b"\x1f\x8b"[..]),
            Payload::default(),
        ];
        assert_eq!(decode(&chain, foreign.clone()).unwrap(), foreign);
    }

    #[test]
    fn errors_keep_the_payload_index_through_the_chain() {
        let chain = ChainBuilder::new()
            .compress_zstd(ZstdCodec::new())
            .encrypt(keyring_ab("a"))
            .build();
        let mut out = encode(&chain, vec![compressible(), compressible()]);
        out[1].metadata.insert(
            crate::METADATA_ENCRYPTION_KEY_ID.to_owned(),
            bytes::Bytes::from_static(b"gone"),
        );
        let err = decode(&chain, out).unwrap_err();
        assert_eq!(err.index(), Some(1));
        assert_eq!(err.kind(), payload_converter::CodecErrorKind::UnknownKey);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn zstd_then_encrypt_round_trips(payloads in batch()) {
            let chain = ChainBuilder::new()
                .compress_zstd(ZstdCodec::new().with_min_size(0))
                .encrypt(keyring_ab("b"))
                .build();
            let encoded = encode(&chain, payloads.clone());
            prop_assert_eq!(encoded.len(), payloads.len());
            prop_assert!(encoded.iter().all(|p| p.encoding() == Some(ENCODING_ENCRYPTED)));
            prop_assert_eq!(decode(&chain, encoded).unwrap(), payloads);
        }

        #[test]
        fn zlib_then_encrypt_round_trips_across_rotation(payloads in batch()) {
            let build = |active: &str| ChainBuilder::new()
                .compress_zlib(ZlibCodec::new())
                .encrypt(keyring_ab(active))
                .build();
            let encoded = encode(&build("a"), payloads.clone());
            prop_assert_eq!(encoded.len(), payloads.len());
            // Key b becomes active; payloads under a still decode.
            prop_assert_eq!(decode(&build("b"), encoded).unwrap(), payloads);
        }

        #[test]
        fn arbitrary_outer_payloads_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..512),
            encoding in prop_oneof![
                Just(ENCODING_ENCRYPTED), Just(ENCODING_ZSTD), Just(ENCODING_ZLIB), Just("json/plain")
            ],
        ) {
            let chain = ChainBuilder::new()
                .compress_zstd(ZstdCodec::new())
                .compress_zlib(ZlibCodec::new())
                .encrypt(keyring_ab("a"))
                .build();
            let mut payload = Payload::with_encoding(encoding, data);
            payload.metadata.insert(crate::METADATA_ENCRYPTION_KEY_ID.to_owned(), bytes::Bytes::from_static(b"a"));
            let _ = decode(&chain, vec![payload]);
        }
    }
}
