//! payloadctl's tests: the built binary, run as an operator would, on real
//! histories exported by the real `temporal` CLI (`testdata/histories/`),
//! against Codec Servers running in process.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a failed unwrap is a failed test.

mod codec;
mod help;
mod history;
mod inspect;
mod keys;
mod kms;
mod probe;
mod util;
