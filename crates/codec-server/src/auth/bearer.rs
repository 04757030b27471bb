//! Static bearer tokens, kept only as SHA-256 hashes.

use ring::digest::{SHA256, digest};
use subtle::ConstantTimeEq;

use super::Access;
use crate::error::ApiError;

/// The SHA-256 of a token, as lowercase hex: what the config stores.
pub fn hash_token(token: &str) -> String {
    hex::encode(digest(&SHA256, token.as_bytes()))
}

/// One accepted token.
#[derive(Clone)]
struct Token {
    sha256: [u8; 32],
    write: bool,
}

/// The accepted tokens of a namespace.
#[derive(Clone, Default)]
pub struct BearerTokens {
    tokens: Vec<Token>,
}

impl std::fmt::Debug for BearerTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BearerTokens({} tokens)", self.tokens.len())
    }
}

/// A configured token hash was not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error(
    "token hash #{index} is not a SHA-256 hex digest (64 hex digits); make one with `printf %s TOKEN | sha256sum`"
)]
pub struct BadTokenHash {
    /// Position in the configured list.
    pub index: usize,
}

impl BearerTokens {
    /// Tokens from their SHA-256 hex digests: `read_write` may encode and
    /// decode, `read_only` may only decode.
    pub fn from_hashes(read_write: &[String], read_only: &[String]) -> Result<Self, BadTokenHash> {
        let mut tokens = Vec::new();
        for (index, (hash, write)) in read_write
            .iter()
            .map(|h| (h, true))
            .chain(read_only.iter().map(|h| (h, false)))
            .enumerate()
        {
            let mut sha256 = [0u8; 32];
            hex::decode_to_slice(hash.trim(), &mut sha256).map_err(|_| BadTokenHash { index })?;
            tokens.push(Token { sha256, write });
        }
        Ok(Self { tokens })
    }

    pub(crate) fn check(
        &self,
        token: &str,
        namespace: &str,
        access: Access,
    ) -> Result<(), ApiError> {
        let presented = digest(&SHA256, token.as_bytes());
        // Compare against every token, in constant time, without early exit.
        let mut matched: Option<bool> = None;
        for known in &self.tokens {
            if bool::from(known.sha256.ct_eq(presented.as_ref())) {
                matched = Some(matched.unwrap_or(false) || known.write);
            }
        }
        match (matched, access) {
            (None, _) => Err(ApiError::Unauthorized(format!(
                "the bearer token is not valid for namespace `{namespace}`"
            ))),
            (Some(false), Access::Write) => Err(ApiError::Forbidden(format!(
                "this token may only decode in namespace `{namespace}`; encoding needs a read-write token"
            ))),
            (Some(_), _) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_by_hash_and_access() {
        let tokens = BearerTokens::from_hashes(&[hash_token("rw")], &[hash_token("ro")]).unwrap();
        tokens.check("rw", "ns", Access::Write).unwrap();
        tokens.check("ro", "ns", Access::Read).unwrap();
        assert!(matches!(
            tokens.check("ro", "ns", Access::Write),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            tokens.check("nope", "ns", Access::Read),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(!format!("{tokens:?}").contains(&hash_token("rw")));
    }

    #[test]
    fn bad_hashes_are_refused_with_their_position() {
        let err = BearerTokens::from_hashes(&[hash_token("a"), "xyz".to_owned()], &[]).unwrap_err();
        assert_eq!(err.index, 1);
    }
}
