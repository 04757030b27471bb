//! [`KekUri`]: a key-encryption key named by URI, as the Temporal Proxy
//! and gocloud name them. The URI's text is the KEK's id: it is written
//! into `encryption-key-id` and matched exactly on decode.
//!
//! | URI | KEK |
//! | --- | --- |
//! | `awskms:///alias/name?region=eu-west-1`, `awskms://<key id>` | an AWS KMS key |
//! | `hashivault://<key>?engine=<mount>`, `vault://<key>` | a Vault/OpenBao transit key (mount `transit` by default) |
//! | `keyring://<key id>` | a key of a local keyring file |
//! | `testing://<base64 key>`, `base64key://<base64 key>` | a 32-byte key in the URI (NaCl secretbox): tests only |
//!
//! A `testing://` KEK is written as `base64key://` (as the proxy does).
//! URIs of the `testing`/`base64key` schemes hold a key: their `Display`
//! and `Debug` forms hide it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use payload_codecs::SecretKey;
use percent_encoding::percent_decode_str;

use crate::error::KmsError;

/// What a KEK URI points at.
#[derive(Clone)]
#[non_exhaustive]
pub enum KekKind {
    /// A 32-byte key carried in the URI (gocloud `base64key://`).
    Testing {
        /// The key.
        key: SecretKey,
    },
    /// A key of the configured keyring file.
    Keyring {
        /// The key's id in the keyring.
        key_id: String,
    },
    /// A Vault or OpenBao transit key.
    Vault {
        /// The secrets engine's mount path (`transit`).
        mount: String,
        /// The transit key's name.
        key: String,
    },
    /// An AWS KMS key.
    AwsKms {
        /// A key id, key ARN, alias name (`alias/x`) or alias ARN.
        key_id: String,
        /// The `region` query parameter, if given.
        region: Option<String>,
    },
    /// A KEK the program registered itself ([`Kms::register`](crate::Kms::register)).
    Custom,
}

/// A parsed KEK URI.
#[derive(Clone, PartialEq, Eq)]
pub struct KekUri {
    /// The id written on payloads.
    id: String,
    kind: KekKind,
}

impl KekUri {
    /// Parses `text`. Unsupported schemes (`gcpkms://`,
    /// `azurekeyvault://`) and malformed URIs are errors that say why.
    pub fn parse(text: &str) -> Result<Self, KmsError> {
        let invalid = |reason: &str| KmsError::InvalidUri {
            uri: shown(text),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| invalid("a KEK is a URI such as `awskms:///alias/temporal`"))?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let param = |name: &str| -> Option<String> {
            query.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k == name).then(|| percent_decode_str(v).decode_utf8_lossy().into_owned())
            })
        };
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "testing" | "base64key" => {
                let key = decode_key(location).ok_or_else(|| {
                    invalid("the key after `testing://` must be 32 bytes in base64")
                })?;
                // The proxy writes a testing KEK under gocloud's scheme.
                return Ok(Self {
                    id: format!("base64key://{rest}"),
                    kind: KekKind::Testing { key },
                });
            }
            "keyring" => KekKind::Keyring {
                key_id: non_empty(location)
                    .ok_or_else(|| invalid("name the key: keyring://<key id>"))?,
            },
            "hashivault" | "vault" => KekKind::Vault {
                mount: param("engine").unwrap_or_else(|| "transit".to_owned()),
                key: non_empty(location.trim_matches('/'))
                    .ok_or_else(|| invalid("name the transit key: hashivault://<key>"))?,
            },
            "awskms" => KekKind::AwsKms {
                key_id: non_empty(location.trim_start_matches('/')).ok_or_else(|| {
                    invalid("name the key: awskms:///alias/<name> or awskms:///<key ARN>")
                })?,
                region: param("region"),
            },
            "gcpkms" | "azurekeyvault" => {
                return Err(KmsError::UnsupportedScheme {
                    scheme: scheme.to_owned(),
                });
            }
            _ => return Err(invalid("unknown scheme")),
        };
        Ok(Self {
            id: text.to_owned(),
            kind,
        })
    }

    /// A KEK of the program's own, named `id` (any text).
    pub(crate) fn custom(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            kind: KekKind::Custom,
        }
    }

    /// The id written into `encryption-key-id`: the URI as configured
    /// (`testing://` becomes `base64key://`). May hold key material for the
    /// testing schemes: write it on payloads, never in logs.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What the URI points at.
    pub fn kind(&self) -> &KekKind {
        &self.kind
    }

    /// The provider's name, for metrics and messages: `awskms`, `vault`,
    /// `keyring`, `testing`.
    pub fn provider(&self) -> &'static str {
        match self.kind {
            KekKind::Testing { .. } => "testing",
            KekKind::Keyring { .. } => "keyring",
            KekKind::Vault { .. } => "vault",
            KekKind::AwsKms { .. } => "awskms",
            KekKind::Custom => "custom",
        }
    }
}

/// Whether `uri` names a key in AWS KMS (`awskms://`): the binaries then
/// read the shared AWS profile for credentials.
pub fn is_aws_kek(uri: &str) -> bool {
    KekUri::parse(uri).is_ok_and(|kek| matches!(kek.kind, KekKind::AwsKms { .. }))
}

/// A KEK id for messages and logs: the URI of a scheme that holds no key
/// (`awskms`, `hashivault`, `vault`, `keyring`, `gcpkms`, `azurekeyvault`),
/// shortened and escaped; of any other scheme (`testing://`, a typo of it,
/// a program's own ids), only the scheme.
pub fn shown(text: &str) -> String {
    // Only URIs of schemes that never carry a key are shown: a mistyped
    // `testing://` (or anything else) shows its scheme only.
    let scheme = text.split_once("://").map(|(scheme, _)| scheme);
    let known = scheme.is_some_and(|scheme| {
        KEY_FREE_SCHEMES
            .iter()
            .any(|known| known.eq_ignore_ascii_case(scheme))
    });
    if !known {
        let scheme: String = scheme
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(20)
            .collect();
        return format!("{scheme}://<hidden>");
    }
    let mut out: String = text
        .chars()
        .take(200)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// KEK URI schemes whose URIs hold no key material.
const KEY_FREE_SCHEMES: [&str; 6] = [
    "awskms",
    "hashivault",
    "vault",
    "keyring",
    "gcpkms",
    "azurekeyvault",
];

fn non_empty(text: &str) -> Option<String> {
    let text = percent_decode_str(text).decode_utf8_lossy();
    (!text.is_empty()).then(|| text.into_owned())
}

/// A 32-byte key in URL-safe base64 (gocloud today) or standard base64
/// (gocloud before 2020), padded or not.
fn decode_key(text: &str) -> Option<SecretKey> {
    let text = text.trim_end_matches('=');
    let bytes = zeroize::Zeroizing::new(
        URL_SAFE
            .decode(pad(text))
            .or_else(|_| STANDARD.decode(pad(text)))
            .ok()?,
    );
    SecretKey::from_bytes(&bytes)
}

fn pad(text: &str) -> String {
    let mut padded = text.to_owned();
    while !padded.len().is_multiple_of(4) {
        padded.push('=');
    }
    padded
}

impl PartialEq for KekKind {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (KekKind::Testing { key: a }, KekKind::Testing { key: b }) => {
                a.as_bytes() == b.as_bytes()
            }
            (KekKind::Keyring { key_id: a }, KekKind::Keyring { key_id: b }) => a == b,
            (KekKind::Vault { mount: m1, key: k1 }, KekKind::Vault { mount: m2, key: k2 }) => {
                m1 == m2 && k1 == k2
            }
            (
                KekKind::AwsKms {
                    key_id: a,
                    region: r1,
                },
                KekKind::AwsKms {
                    key_id: b,
                    region: r2,
                },
            ) => a == b && r1 == r2,
            (KekKind::Custom, KekKind::Custom) => true,
            _ => false,
        }
    }
}

impl Eq for KekKind {}

impl fmt::Display for KekUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shown(&self.id))
    }
}

impl fmt::Debug for KekUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KekUri({})", shown(&self.id))
    }
}

impl fmt::Debug for KekKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KekKind::Testing { .. } => f.write_str("Testing(<key hidden>)"),
            KekKind::Keyring { key_id } => {
                f.debug_struct("Keyring").field("key_id", key_id).finish()
            }
            KekKind::Vault { mount, key } => f
                .debug_struct("Vault")
                .field("mount", mount)
                .field("key", key)
                .finish(),
            KekKind::AwsKms { key_id, region } => f
                .debug_struct("AwsKms")
                .field("key_id", key_id)
                .field("region", region)
                .finish(),
            KekKind::Custom => f.write_str("Custom"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_uris_name_the_key_as_gocloud_does() {
        let uri = KekUri::parse("awskms:///alias/temporal?region=eu-west-1").unwrap();
        assert_eq!(
            uri.kind(),
            &KekKind::AwsKms {
                key_id: "alias/temporal".into(),
                region: Some("eu-west-1".into())
            }
        );
        assert_eq!(uri.id(), "awskms:///alias/temporal?region=eu-west-1");
        let arn = "awskms:///arn:aws:kms:us-east-1:111122223333:key/1234abcd";
        assert!(matches!(
            KekUri::parse(arn).unwrap().kind(),
            KekKind::AwsKms { key_id, region: None } if key_id == "arn:aws:kms:us-east-1:111122223333:key/1234abcd"
        ));
        assert_eq!(uri.provider(), "awskms");
    }

    #[test]
    fn vault_uris_default_to_the_transit_mount() {
        let uri = KekUri::parse("hashivault://payloads").unwrap();
        assert_eq!(
            uri.kind(),
            &KekKind::Vault {
                mount: "transit".into(),
                key: "payloads".into()
            }
        );
        let uri = KekUri::parse("vault://payloads?engine=kms%2Fteam").unwrap();
        assert!(matches!(uri.kind(), KekKind::Vault { mount, .. } if mount == "kms/team"));
    }

    #[test]
    fn testing_uris_hold_a_key_that_is_never_shown() {
        let key = URL_SAFE.encode([0xfb; 32]);
        let uri = KekUri::parse(&format!("testing://{key}")).unwrap();
        assert_eq!(uri.id(), format!("base64key://{key}"));
        assert_eq!(uri.to_string(), "base64key://<hidden>");
        assert!(!format!("{uri:?}").contains(&key[..10]));
        // Standard base64 and no padding are read too.
        let std = STANDARD.encode([0xfb; 32]);
        assert!(KekUri::parse(&format!("base64key://{}", std.trim_end_matches('='))).is_ok());
        let err = KekUri::parse("testing://c2hvcnQ=").unwrap_err().to_string();
        assert!(err.contains("32 bytes"), "{err}");
        assert!(!err.contains("c2hvcnQ"), "{err}");
        // Mistyped, the key is still not shown.
        for typo in [
            format!("testng://{key}"),
            format!(" testing://{key}"),
            format!("testing:/{key}"),
            format!("TESTING://{key}"),
            key.clone(),
        ] {
            let err = KekUri::parse(&typo)
                .map(|u| u.to_string())
                .unwrap_or_else(|e| e.to_string());
            assert!(!err.contains(&key[..12]), "{typo}: {err}");
        }
    }

    #[test]
    fn bad_uris_say_what_to_write() {
        for (text, hint) in [
            ("alias/x", "a KEK is a URI"),
            ("awskms://", "awskms:///alias/"),
            ("keyring://", "keyring://<key id>"),
            ("ftp://x", "unknown scheme"),
            (
                "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k",
                "not supported",
            ),
        ] {
            let err = KekUri::parse(text).unwrap_err().to_string();
            assert!(err.contains(hint), "{text}: {err}");
        }
    }
}
