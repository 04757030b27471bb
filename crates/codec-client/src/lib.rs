//! A Codec Server client: [`RemotePayloadCodec`] is a `PayloadCodec` that
//! sends each batch to a Codec Server's `/encode` or `/decode`, as the
//! Temporal CLI does with `--codec-endpoint`.
//!
//! Its own crate, so that a program that calls a Codec Server (payloadctl,
//! a worker) does not link the server.
//!
//! # Examples
//!
//! ```no_run
//! use codec_client::RemotePayloadCodec;
//! use payload_converter::PayloadCodec;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let codec = RemotePayloadCodec::new("http://127.0.0.1:8888", "default")?
//!     .with_authorization("Bearer my-token")?;
//! let decoded = codec.decode(Vec::new()).await?;
//! # Ok(()) }
//! ```

mod remote;

pub use crate::remote::{RemoteCodecError, RemotePayloadCodec};
