//! [`SdkCodec`]: the adapter from our codec trait to the SDK's.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use payload_converter::{CountMismatch, PayloadCodec};
use temporalio_common::data_converters::{
    DataConverter, DefaultFailureConverter, PayloadCodec as SdkPayloadCodec,
    PayloadConversionError, PayloadConverter, SerializationContextData,
};
use temporalio_common::protos::temporal::api::common::v1::Payload as SdkPayload;

use crate::convert::{payload_from_sdk, payload_to_sdk};
use crate::error::{Direction, SdkCodecError};

/// A payloadkit codec (or chain) as the Temporal Rust SDK's `PayloadCodec`.
///
/// Cheap to clone (it shares the codec). Every batch keeps its count and
/// order: a codec that returns another number of payloads is reported as a
/// `Contract` error rather than handed to the SDK.
///
/// ```
/// use std::sync::Arc;
///
/// use payload_codecs::{ChainBuilder, KeyId, Keyring, SecretKey};
/// use payload_converter::PayloadCodec as _;
/// use temporal_sdk_codec::SdkCodec;
///
/// let keyring = Arc::new(Keyring::single(KeyId::new("k1")?, SecretKey::generate()?));
/// let codec = SdkCodec::new(ChainBuilder::new().encrypt(keyring).build());
/// assert_eq!(codec.inner().name(), "aes-256-gcm");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SdkCodec<C: ?Sized = payload_converter::CodecChain> {
    codec: Arc<C>,
}

impl<C: PayloadCodec + 'static> SdkCodec<C> {
    /// Wraps `codec`.
    pub fn new(codec: C) -> Self {
        Self {
            codec: Arc::new(codec),
        }
    }
}

impl<C: PayloadCodec + ?Sized + 'static> SdkCodec<C> {
    /// Wraps a shared codec, e.g. an `Arc<dyn PayloadCodec>` the process
    /// also uses elsewhere.
    pub fn from_arc(codec: Arc<C>) -> Self {
        Self { codec }
    }

    /// The wrapped codec.
    pub fn inner(&self) -> &C {
        &self.codec
    }

    fn run(&self, payloads: Vec<SdkPayload>, direction: Direction) -> SdkFuture {
        let codec = Arc::clone(&self.codec);
        Box::pin(async move {
            let expected = payloads.len();
            let ours = payloads.into_iter().map(payload_from_sdk).collect();
            let result = match direction {
                Direction::Encode => codec.encode(ours).await,
                Direction::Decode => codec.decode(ours).await,
            };
            let out = result
                .and_then(|out| CountMismatch::check(codec.name(), expected, out))
                .map_err(|err| SdkCodecError::new(codec.name(), direction, err))
                .map_err(|err| PayloadConversionError::EncodingError(Box::new(err)))?;
            Ok(out.into_iter().map(payload_to_sdk).collect())
        })
    }
}

/// The future the SDK's trait returns (`futures::future::BoxFuture`).
type SdkFuture =
    Pin<Box<dyn Future<Output = Result<Vec<SdkPayload>, PayloadConversionError>> + Send + 'static>>;

impl<C: PayloadCodec + ?Sized + 'static> SdkPayloadCodec for SdkCodec<C> {
    fn encode(&self, _context: &SerializationContextData, payloads: Vec<SdkPayload>) -> SdkFuture {
        self.run(payloads, Direction::Encode)
    }

    fn decode(&self, _context: &SerializationContextData, payloads: Vec<SdkPayload>) -> SdkFuture {
        self.run(payloads, Direction::Decode)
    }
}

impl<C: ?Sized> Clone for SdkCodec<C> {
    fn clone(&self) -> Self {
        Self {
            codec: Arc::clone(&self.codec),
        }
    }
}

impl<C: PayloadCodec + ?Sized> fmt::Debug for SdkCodec<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkCodec")
            .field("codec", &self.codec.name())
            .finish()
    }
}

/// The SDK's default data converter (its JSON payload converter and default
/// failure converter) with `codec` as its payload codec: pass it to
/// `ClientOptions::new(namespace).data_converter(…)`; workers built on that
/// client use it too.
pub fn data_converter<C: PayloadCodec + 'static>(codec: C) -> DataConverter {
    DataConverter::new(
        PayloadConverter::default(),
        DefaultFailureConverter::default(),
        SdkCodec::new(codec),
    )
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use payload_codecs::{AesGcmCodec, ChainBuilder, KeyId, Keyring, SecretKey, ZstdCodec};
    use payload_converter::{CodecErrorKind, PayloadExt};
    use proptest::prelude::*;
    use prost::Message;
    use temporalio_common::data_converters::SerializationContextData as Context;

    use super::*;

    const SAMPLE_KEY: &[u8; 32] = b"test-key-test-key-test-key-test!";

    fn keyring() -> Arc<Keyring> {
        let key = SecretKey::from_bytes(SAMPLE_KEY).unwrap();
        Arc::new(Keyring::single(KeyId::new("test-key-id").unwrap(), key))
    }

    fn sdk_payload(encoding: &str, data: &[u8]) -> SdkPayload {
        SdkPayload {
            metadata: [("encoding".to_owned(), encoding.as_bytes().to_vec())].into(),
            data: data.to_vec(),
            external_payloads: Vec::new(),
        }
    }

    fn block_on<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn encode<C: SdkPayloadCodec>(codec: &C, payloads: Vec<SdkPayload>) -> Vec<SdkPayload> {
        block_on(codec.encode(&Context::None, payloads)).unwrap()
    }

    fn decode<C: SdkPayloadCodec>(
        codec: &C,
        payloads: Vec<SdkPayload>,
    ) -> Result<Vec<SdkPayload>, PayloadConversionError> {
        block_on(codec.decode(&Context::None, payloads))
    }

    #[test]
    fn aes_round_trips_in_the_samples_format() {
        let codec = SdkCodec::new(AesGcmCodec::new(keyring()));
        let plain = vec![
            sdk_payload("json/plain", br#""Zanzibar-7""#),
            sdk_payload("binary/null", b""),
        ];
        let encoded = encode(&codec, plain.clone());
        assert_eq!(encoded.len(), 2);
        for p in &encoded {
            assert_eq!(p.metadata["encoding"], b"binary/encrypted");
            assert_eq!(p.metadata["encryption-key-id"], b"test-key-id");
            // nonce ‖ ciphertext of the serialized payload ‖ tag
            assert!(!p.data.windows(10).any(|w| w == b"Zanzibar-7"));
        }
        assert_eq!(
            encoded[0].data.len(),
            12 + plain[0].encoded_len() + 16,
            "nonce, ciphertext of the whole serialized payload, tag"
        );
        assert_eq!(decode(&codec, encoded).unwrap(), plain);
    }

    #[test]
    fn what_the_adapter_encodes_our_plain_codec_decodes_and_back() {
        let adapter = SdkCodec::new(AesGcmCodec::new(keyring()));
        let plain = AesGcmCodec::new(keyring());
        let original = sdk_payload("json/plain", br#"{"a":1}"#);

        let via_sdk = encode(&adapter, vec![original.clone()]);
        let ours =
            block_on(plain.decode(via_sdk.into_iter().map(payload_from_sdk).collect())).unwrap();
        assert_eq!(ours, [payload_from_sdk(original.clone())]);

        let by_us = block_on(plain.encode(ours)).unwrap();
        let back = decode(&adapter, by_us.into_iter().map(payload_to_sdk).collect()).unwrap();
        assert_eq!(back, [original]);
    }

    /// A payload the real Python SDK encrypted with the samples' codec
    /// (`payload-codecs/testdata/python`), read as the Rust SDK's type.
    #[test]
    fn decodes_what_the_python_sample_codec_wrote() {
        let testdata = "../payload-codecs/testdata/python";
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(testdata);
        let read = |name: &str| {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            SdkPayload::decode(bytes.as_slice()).unwrap()
        };
        let codec = SdkCodec::new(AesGcmCodec::new(keyring()));
        for case in ["enc_string", "enc_dict", "enc_null", "enc_large"] {
            let outer = read(&format!("{case}.bin"));
            let inner = read(&format!("{case}.inner.bin"));
            assert_eq!(decode(&codec, vec![outer]).unwrap(), [inner], "{case}");
        }
    }

    #[test]
    fn a_zstd_then_aes_chain_round_trips_and_compresses() {
        let chain = ChainBuilder::new()
            .compress_zstd(ZstdCodec::new())
            .encrypt(keyring())
            .build();
        let codec = SdkCodec::new(chain);
        let big = sdk_payload("json/plain", "\"abc\"".repeat(4000).as_bytes());
        let encoded = encode(&codec, vec![big.clone()]);
        assert_eq!(encoded[0].metadata["encoding"], b"binary/encrypted");
        assert!(encoded[0].data.len() < big.data.len() / 10);
        // Peeling only the encryption shows the zstd layer.
        let inner = decode(&SdkCodec::new(AesGcmCodec::new(keyring())), encoded.clone()).unwrap();
        assert_eq!(inner[0].metadata["encoding"], b"binary/zstd");
        assert_eq!(decode(&codec, encoded).unwrap(), [big]);
    }

    #[test]
    fn errors_reach_the_sdk_with_our_message_and_type() {
        let codec = SdkCodec::new(AesGcmCodec::new(keyring()));
        let mut encoded = encode(
            &codec,
            vec![
                sdk_payload("json/plain", b"1"),
                sdk_payload("json/plain", b"2"),
            ],
        );
        encoded[1]
            .metadata
            .insert("encryption-key-id".to_owned(), b"gone-key".to_vec());

        let err = decode(&codec, encoded).unwrap_err();
        let PayloadConversionError::EncodingError(inner) = &err else {
            panic!("expected EncodingError, got {err:?}");
        };
        let message = err.to_string();
        assert!(message.starts_with("Encoding error: payloadkit codec `aes-256-gcm` could not decode the payloads: payload 1: "), "{message}");
        assert!(message.contains("gone-key"), "{message}");

        let ours = inner.downcast_ref::<SdkCodecError>().unwrap();
        assert_eq!(ours.direction(), Direction::Decode);
        assert_eq!(ours.codec(), "aes-256-gcm");
        assert_eq!(ours.codec_error().kind(), CodecErrorKind::UnknownKey);
        assert_eq!(ours.codec_error().index(), Some(1));
        // The typed error is also the `source` chain.
        assert!(err.source().and_then(|e| e.source()).is_some());
        // Nothing of the payload leaks into the message.
        assert!(!format!("{err:?}").contains("json/plain"));
    }

    use test_support::DropsOne;

    #[test]
    fn a_codec_that_drops_a_payload_is_a_contract_error() {
        let codec = SdkCodec::new(DropsOne);
        let err =
            block_on(codec.encode(&Context::None, vec![SdkPayload::default(); 2])).unwrap_err();
        assert!(
            err.to_string()
                .contains("returned 1 payloads for a batch of 2"),
            "{err}"
        );
    }

    #[test]
    fn shared_dyn_codecs_and_the_data_converter_work() {
        let shared: Arc<dyn PayloadCodec> = Arc::new(AesGcmCodec::new(keyring()));
        let codec = SdkCodec::from_arc(shared);
        assert_eq!(format!("{codec:?}"), r#"SdkCodec { codec: "aes-256-gcm" }"#);

        let converter = data_converter(AesGcmCodec::new(keyring()));
        let payload =
            block_on(converter.to_payload(&Context::None, &"Lagos-4".to_owned())).unwrap();
        assert_eq!(payload.metadata["encoding"], b"binary/encrypted");
        // Our codec behind `dyn` reads what the data converter wrote.
        let plain = decode(&codec, vec![payload.clone()]).unwrap();
        assert_eq!(plain[0].data, br#""Lagos-4""#);
        assert_eq!(
            payload_from_sdk(plain[0].clone()).encoding(),
            Some("json/plain")
        );
        let value: String = block_on(converter.from_payload(&Context::None, payload)).unwrap();
        assert_eq!(value, "Lagos-4");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn zstd_then_aes_round_trips_any_batch(
            batch in proptest::collection::vec(
                (".{0,10}", proptest::collection::vec(any::<u8>(), 0..2000)),
                0..6,
            )
        ) {
            let codec = SdkCodec::new(
                ChainBuilder::new()
                    .compress_zstd(ZstdCodec::new().with_min_size(0))
                    .encrypt(keyring())
                    .build(),
            );
            let payloads: Vec<SdkPayload> =
                batch.iter().map(|(enc, data)| sdk_payload(enc, data)).collect();
            let encoded = encode(&codec, payloads.clone());
            prop_assert_eq!(encoded.len(), payloads.len());
            prop_assert_eq!(decode(&codec, encoded).unwrap(), payloads);
        }
    }
}
