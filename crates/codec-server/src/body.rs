//! The `/encode` and `/decode` body: proto3 JSON `{"payloads":[…]}`.
//!
//! - [`read`]: the body read into one buffer, within `server.max_body_bytes`
//!   and reserved in the server's memory gate as it arrives.
//! - [`parse`] (with [`direct`] and [`decode`]): input parsed leniently
//!   (camelCase or snake_case names, either base64 alphabet, unknown fields
//!   ignored: see `payload-proto`), with errors that point at the problem:
//!   the JSON position for syntax errors, the payload index for a malformed
//!   payload. A direct parser does the common work; input it refuses goes
//!   through the generated proto3 JSON code (`pbjson`), so what is accepted
//!   and the error messages are the generated code's. Long data strings are
//!   decoded from base64 in the body's own buffer.
//! - [`answer`]: the answer, always `{"payloads":[…]}` with the array
//!   present even when empty; large ones streamed as they are sent.

mod answer;
mod decode;
mod direct;
mod parse;
mod read;
#[cfg(test)]
mod strategies;

pub(crate) use self::answer::{RAW_PIECE, StreamedAnswer, write_payloads};
pub(crate) use self::parse::parse_payloads;
pub(crate) use self::read::read_body;
