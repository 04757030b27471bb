//! The data converter: payload converter + failure converter + codec chain.

use std::sync::Arc;

use payload_proto::temporal::api::common::v1::Payloads;
use payload_proto::temporal::api::failure::v1::Failure;

use crate::codec::{CodecChain, PayloadCodec};
use crate::converter::{CompositeConverter, PayloadConverter, from_payload_as};
use crate::error::{DataConverterError, PayloadCodecError};
use crate::failure::{FailureConverter, TemporalFailure};
use crate::value::{FromPayload, Value};
use crate::visit::{VisitPayloads, decode_message, encode_message};

/// Everything that turns Rust values into the payloads Temporal stores and
/// back: values go through the payload converter, then the codec chain;
/// payloads come back through the chain, then the converter.
#[derive(Clone, Debug)]
pub struct DataConverter {
    payload_converter: Arc<dyn PayloadConverter>,
    failure_converter: FailureConverter,
    codec: Arc<dyn PayloadCodec>,
}

impl Default for DataConverter {
    /// The SDK defaults: standard converters, no encoded attributes, no codec.
    fn default() -> Self {
        Self {
            payload_converter: Arc::new(CompositeConverter::default()),
            failure_converter: FailureConverter::default(),
            codec: Arc::new(CodecChain::default()),
        }
    }
}

impl DataConverter {
    /// Replaces the payload converter.
    #[must_use]
    pub fn with_payload_converter(mut self, converter: Arc<dyn PayloadConverter>) -> Self {
        self.payload_converter = converter;
        self
    }

    /// Replaces the failure converter.
    #[must_use]
    pub fn with_failure_converter(mut self, converter: FailureConverter) -> Self {
        self.failure_converter = converter;
        self
    }

    /// Sets the codec (often a [`CodecChain`]).
    #[must_use]
    pub fn with_codec(mut self, codec: Arc<dyn PayloadCodec>) -> Self {
        self.codec = codec;
        self
    }

    /// The payload converter.
    pub fn payload_converter(&self) -> &dyn PayloadConverter {
        &*self.payload_converter
    }

    /// The failure converter.
    pub fn failure_converter(&self) -> FailureConverter {
        self.failure_converter
    }

    /// The codec.
    pub fn codec(&self) -> &dyn PayloadCodec {
        &*self.codec
    }

    /// Converts values to payloads and encodes them with the codec.
    pub async fn to_payloads(&self, values: &[Value<'_>]) -> Result<Payloads, DataConverterError> {
        let payloads = values
            .iter()
            .enumerate()
            .map(|(index, value)| {
                self.payload_converter
                    .to_payload(value)
                    .map_err(|source| DataConverterError::Conversion { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Payloads {
            payloads: self.codec.encode(payloads).await?,
        })
    }

    /// Decodes payloads with the codec and reads each as a `T`.
    pub async fn from_payloads<T: FromPayload>(
        &self,
        payloads: Payloads,
    ) -> Result<Vec<T>, DataConverterError> {
        let decoded = self.codec.decode(payloads.payloads).await?;
        decoded
            .iter()
            .enumerate()
            .map(|(index, payload)| {
                from_payload_as(&*self.payload_converter, payload)
                    .map_err(|source| DataConverterError::Conversion { index, source })
            })
            .collect()
    }

    /// Converts a failure to its protobuf and encodes the payloads in it.
    pub async fn to_failure(
        &self,
        failure: &TemporalFailure,
    ) -> Result<Failure, DataConverterError> {
        let mut proto = self
            .failure_converter
            .to_failure(failure, &*self.payload_converter)
            .map_err(|source| DataConverterError::Conversion { index: 0, source })?;
        self.encode(&mut proto).await?;
        Ok(proto)
    }

    /// Decodes the payloads in a failure protobuf and converts it.
    pub async fn from_failure(
        &self,
        mut failure: Failure,
    ) -> Result<TemporalFailure, DataConverterError> {
        self.decode(&mut failure).await?;
        Ok(self
            .failure_converter
            .from_failure(failure, &*self.payload_converter))
    }

    /// Encodes every payload inside `message` with the codec.
    pub async fn encode<M: VisitPayloads + ?Sized>(
        &self,
        message: &mut M,
    ) -> Result<(), PayloadCodecError> {
        encode_message(&*self.codec, message).await
    }

    /// Decodes every payload inside `message` with the codec.
    pub async fn decode<M: VisitPayloads + ?Sized>(
        &self,
        message: &mut M,
    ) -> Result<(), PayloadCodecError> {
        decode_message(&*self.codec, message).await
    }
}
