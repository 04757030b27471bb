//! The direct parser of a body: serde visitors that build each payload's
//! map and bytes as they read, and leave long data strings where they are
//! in the body (to be decoded there, see [`super::decode`]).

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use payload_proto::temporal::api::common::v1::Payload;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::decode::decode_lenient;

/// Data strings at least this long are left in the body, to be decoded in
/// place.
const DEFER_CHARS: usize = 64 * 1024;

/// One payload as the direct parser read it.
pub(super) struct Parsed<'de> {
    /// The payload; its data is empty when `text` holds it.
    pub(super) payload: Payload,
    /// The payload's data text, when left in the body.
    pub(super) text: Option<&'de [u8]>,
    /// A metadata key given more than once (the first such key).
    pub(super) repeated_key: Option<String>,
}

/// The payloads of a body, parsed directly. `"payloads": null` is an
/// empty list, as proto3 JSON reads `null` for any field.
pub(super) struct Direct<'de>(pub(super) Vec<Parsed<'de>>);

impl<'de> Deserialize<'de> for Direct<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Body;
        impl<'de> Visitor<'de> for Body {
            type Value = Direct<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Payloads object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Direct<'de>, A::Error> {
                let mut payloads = None;
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Payloads if payloads.is_none() => {
                            payloads = Some(
                                map.next_value::<Option<DirectList<'de>>>()?
                                    .map(|list| list.0)
                                    .unwrap_or_default(),
                            );
                        }
                        Key::Payloads => return Err(de::Error::duplicate_field("payloads")),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Direct(payloads.unwrap_or_default()))
            }
        }
        deserializer.deserialize_map(Body)
    }
}

struct DirectList<'de>(Vec<Parsed<'de>>);

impl<'de> Deserialize<'de> for DirectList<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = DirectList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of payloads")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DirectList<'de>, A::Error> {
                let mut payloads = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(1024));
                while let Some(DirectPayload(parsed)) = seq.next_element()? {
                    payloads.push(parsed);
                }
                Ok(DirectList(payloads))
            }
        }
        deserializer.deserialize_seq(List)
    }
}

struct DirectPayload<'de>(Parsed<'de>);

impl<'de> Deserialize<'de> for DirectPayload<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct One;
        impl<'de> Visitor<'de> for One {
            type Value = DirectPayload<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Payload object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<DirectPayload<'de>, A::Error> {
                let mut payload = Payload::default();
                let mut text = None;
                let mut repeated_key = None;
                let (mut metadata, mut data, mut external) = (false, false, false);
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Metadata if !metadata => {
                            metadata = true;
                            let Metadata(entries, repeated) = map.next_value()?;
                            payload.metadata = entries;
                            repeated_key = repeated;
                        }
                        Key::Data if !data => {
                            data = true;
                            match map.next_value::<Data<'de>>()? {
                                Data::Decoded(bytes) => payload.data = bytes,
                                Data::Deferred(deferred) => text = Some(deferred),
                            }
                        }
                        Key::ExternalPayloads if !external => {
                            external = true;
                            payload.external_payloads = map.next_value()?;
                        }
                        Key::Metadata | Key::Data | Key::ExternalPayloads => {
                            return Err(de::Error::custom("duplicate field"));
                        }
                        Key::Payloads | Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(DirectPayload(Parsed {
                    payload,
                    text,
                    repeated_key,
                }))
            }
        }
        deserializer.deserialize_map(One)
    }
}

/// The field names the direct parser knows, in both spellings.
enum Key {
    Payloads,
    Metadata,
    Data,
    ExternalPayloads,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Key, E> {
                Ok(match name {
                    "payloads" => Key::Payloads,
                    "metadata" => Key::Metadata,
                    "data" => Key::Data,
                    "externalPayloads" | "external_payloads" => Key::ExternalPayloads,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(Name)
    }
}

/// A payload's metadata, values decoded from base64 as they are read, and
/// the first key given twice, if any (the generated code would keep the
/// last value without a word; we refuse such a payload).
struct Metadata(BTreeMap<String, Bytes>, Option<String>);

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Map;
        impl<'de> Visitor<'de> for Map {
            type Value = Metadata;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of base64 strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
                let mut out = BTreeMap::new();
                let mut repeated = None;
                while let Some(key) = map.next_key::<String>()? {
                    let Base64(value) = map.next_value()?;
                    match out.entry(key) {
                        std::collections::btree_map::Entry::Vacant(entry) => {
                            entry.insert(value);
                        }
                        std::collections::btree_map::Entry::Occupied(entry) => {
                            repeated.get_or_insert_with(|| entry.key().clone());
                        }
                    }
                }
                Ok(Metadata(out, repeated))
            }
        }
        deserializer.deserialize_map(Map)
    }
}

/// Bytes from a base64 string: either alphabet, padding optional (as the
/// generated code accepts).
struct Base64(Bytes);

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = Base64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string")
            }
            // Bytes rather than `str`: base64 is ASCII, so checking the
            // text is UTF-8 first would be wasted (what is not base64 is
            // refused either way).
            fn visit_bytes<E: de::Error>(self, text: &[u8]) -> Result<Base64, E> {
                decode_lenient(text).map(Base64).map_err(E::custom)
            }
        }
        deserializer.deserialize_bytes(Text)
    }
}

/// A payload's data: decoded, or (a long string straight from the body)
/// left in the body to be decoded in place.
enum Data<'de> {
    Decoded(Bytes),
    Deferred(&'de [u8]),
}

impl<'de> Deserialize<'de> for Data<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Data<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, text: &'de [u8]) -> Result<Data<'de>, E> {
                if text.len() >= DEFER_CHARS {
                    Ok(Data::Deferred(text))
                } else {
                    self.visit_bytes(text)
                }
            }
            fn visit_bytes<E: de::Error>(self, text: &[u8]) -> Result<Data<'de>, E> {
                decode_lenient(text).map(Data::Decoded).map_err(E::custom)
            }
        }
        // As for `Base64`: bytes, not `str`.
        deserializer.deserialize_bytes(Text)
    }
}
