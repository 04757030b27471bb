//! Our `Payload` ⇄ the SDK's `Payload`.
//!
//! Both are prost types of the same message,
//! `temporal.api.common.v1.Payload`; they differ only in Rust field types
//! (`bytes::Bytes` and a `BTreeMap` here, `Vec<u8>` and a `HashMap` in the
//! SDK). Converting moves each buffer: a `Vec<u8>` becomes `Bytes` without
//! copying, and `Bytes` becomes a `Vec<u8>` without copying when it owns its
//! buffer alone (as a codec's fresh output does; a shared or static buffer
//! is copied once). Nothing is encoded to or decoded from protobuf.
//!
//! The destructuring below names every field, with no `..`: should a new
//! SDK version add a field to its `Payload`, this fails to compile instead
//! of dropping the field.

use payload_proto::temporal::api::common::v1::Payload;
use payload_proto::temporal::api::common::v1::payload::ExternalPayloadDetails;
use temporalio_common::protos::temporal::api::common::v1::Payload as SdkPayload;
use temporalio_common::protos::temporal::api::common::v1::payload::ExternalPayloadDetails as SdkExternalPayloadDetails;

/// Our payload as the SDK's, moving metadata values and data.
pub fn payload_to_sdk(payload: Payload) -> SdkPayload {
    let Payload {
        metadata,
        data,
        external_payloads,
    } = payload;
    SdkPayload {
        metadata: metadata
            .into_iter()
            .map(|(key, value)| (key, Vec::from(value)))
            .collect(),
        data: Vec::from(data),
        external_payloads: external_payloads
            .into_iter()
            .map(|ExternalPayloadDetails { size_bytes }| SdkExternalPayloadDetails { size_bytes })
            .collect(),
    }
}

/// The SDK's payload as ours, moving metadata values and data.
pub fn payload_from_sdk(payload: SdkPayload) -> Payload {
    let SdkPayload {
        metadata,
        data,
        external_payloads,
    } = payload;
    Payload {
        metadata: metadata
            .into_iter()
            .map(|(key, value)| (key, value.into()))
            .collect(),
        data: data.into(),
        external_payloads: external_payloads
            .into_iter()
            .map(|SdkExternalPayloadDetails { size_bytes }| ExternalPayloadDetails { size_bytes })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;
    use prost::Message;

    use super::*;

    fn payload() -> impl Strategy<Value = Payload> {
        test_support::payload(300)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn ours_to_sdk_and_back_keeps_every_field(ours in payload()) {
            let sdk = payload_to_sdk(ours.clone());
            prop_assert_eq!(sdk.data.as_slice(), &ours.data[..]);
            prop_assert_eq!(sdk.metadata.len(), ours.metadata.len());
            for (key, value) in &ours.metadata {
                prop_assert_eq!(sdk.metadata.get(key).map(Vec::as_slice), Some(&value[..]));
            }
            prop_assert_eq!(sdk.external_payloads.len(), ours.external_payloads.len());
            prop_assert_eq!(payload_from_sdk(sdk), ours);
        }

        /// The two types are the same protobuf message: each side's wire
        /// bytes decode on the other side to the converted value.
        #[test]
        fn the_wire_forms_agree(ours in payload()) {
            let sdk = SdkPayload::decode(ours.encode_to_vec().as_slice()).unwrap();
            prop_assert_eq!(&sdk, &payload_to_sdk(ours.clone()));
            let back = Payload::decode(sdk.encode_to_vec().as_slice()).unwrap();
            prop_assert_eq!(back, ours);
        }
    }

    #[test]
    fn owned_buffers_move_without_copying() {
        let data = vec![7u8; 4096];
        let value = b"binary/encrypted".to_vec();
        let (data_ptr, value_ptr) = (data.as_ptr(), value.as_ptr());
        let sdk = SdkPayload {
            metadata: [("encoding".to_owned(), value)].into(),
            data,
            external_payloads: Vec::new(),
        };

        let ours = payload_from_sdk(sdk);
        assert_eq!(ours.data.as_ptr(), data_ptr);
        assert_eq!(ours.metadata["encoding"].as_ptr(), value_ptr);

        let sdk = payload_to_sdk(ours);
        assert_eq!(sdk.data.as_ptr(), data_ptr);
        assert_eq!(sdk.metadata["encoding"].as_ptr(), value_ptr);
    }

    #[test]
    fn shared_buffers_are_copied_not_stolen() {
        let shared = Bytes::from(vec![1u8, 2, 3]);
        let ours = Payload {
            data: shared.clone(),
            ..Payload::default()
        };
        let sdk = payload_to_sdk(ours);
        assert_eq!(sdk.data, [1, 2, 3]);
        assert_eq!(&shared[..], [1, 2, 3]);
    }
}
