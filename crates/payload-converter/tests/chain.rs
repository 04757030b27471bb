//! The codec chain checks the codec contract: a codec that changes the
//! size of a batch is an error, not a silently shorter answer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a failed unwrap is a failed test.

use std::sync::Arc;

use payload_converter::{CodecChain, CodecErrorKind, PayloadCodec};
use payload_proto::temporal::api::common::v1::Payload;

#[tokio::test]
async fn a_codec_that_changes_the_count_is_an_error() {
    let chain = CodecChain::new(vec![Arc::new(test_support::DropsOne)]);
    for result in [
        chain
            .encode(vec![Payload::default(), Payload::default()])
            .await,
        chain
            .decode(vec![Payload::default(), Payload::default()])
            .await,
    ] {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), CodecErrorKind::Contract);
        assert!(
            err.to_string()
                .contains("`drops-one` returned 1 payloads for a batch of 2"),
            "{err}"
        );
    }
}
