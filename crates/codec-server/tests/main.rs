//! Integration tests of the Codec Server over real TCP: one binary, one
//! module per area.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a failed unwrap is a failed test.

mod auth;
mod bad_input;
mod cors;
mod docs;
mod fuzz;
mod hostile;
mod http;
mod jwt;
mod kms;
mod stateless;
mod storage;
mod tls;
mod util;
