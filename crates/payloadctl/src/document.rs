//! A JSON document that keeps what it was given: object keys stay in their
//! order (serde_json's own `Value` sorts them unless the `preserve_order`
//! feature is on, which would change every crate's JSON in a workspace
//! build), and numbers stay serde_json `Number`s. Printed pretty with two
//! spaces, as `temporal workflow show -o json` writes, so the parts of an
//! export that `payloadctl` does not touch come out as they went in.
//!
//! [`JsonPath`] names a place in a document (`$.events[3].input`) for error
//! messages.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A JSON value with object keys in document order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses JSON text; errors carry serde_json's line and column.
    pub(crate) fn parse(text: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(text)
    }

    /// Pretty JSON text (two-space indent) with a final newline.
    pub(crate) fn to_pretty(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self)
            .expect("invariant: a Json tree always serializes (string keys, finite numbers)");
        out.push(b'\n');
        out
    }

    /// The value of `key` if this is an object that has it.
    pub(crate) fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The fields, if this is an object.
    pub(crate) fn as_object(&self) -> Option<&[(String, Json)]> {
        match self {
            Json::Object(fields) => Some(fields),
            _ => None,
        }
    }

    /// A short name of the JSON type, for messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    /// The value at `path`, if it exists.
    #[cfg(test)]
    pub(crate) fn at(&self, path: &JsonPath) -> Option<&Json> {
        path.steps
            .iter()
            .try_fold(self, |node, step| match (node, step) {
                (Json::Object(fields), Step::Field(i, _)) => fields.get(*i).map(|(_, v)| v),
                (Json::Array(items), Step::Index(i)) => items.get(*i),
                _ => None,
            })
    }

    /// The value at `path`, mutably, if it exists.
    pub(crate) fn at_mut(&mut self, path: &JsonPath) -> Option<&mut Json> {
        path.steps
            .iter()
            .try_fold(self, |node, step| match (node, step) {
                (Json::Object(fields), Step::Field(i, _)) => fields.get_mut(*i).map(|(_, v)| v),
                (Json::Array(items), Step::Index(i)) => items.get_mut(*i),
                _ => None,
            })
    }

    /// Converts to a serde_json value (key order is lost), to deserialize a
    /// protobuf type from it.
    pub(crate) fn to_value(&self) -> serde_json::Value {
        match self {
            Json::Null => serde_json::Value::Null,
            Json::Bool(b) => serde_json::Value::Bool(*b),
            Json::Number(n) => serde_json::Value::Number(n.clone()),
            Json::String(s) => serde_json::Value::String(s.clone()),
            Json::Array(items) => {
                serde_json::Value::Array(items.iter().map(Json::to_value).collect())
            }
            Json::Object(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect(),
            ),
        }
    }

    /// Serializes any value (e.g. a protobuf message with its proto3 JSON
    /// serde implementation) into a tree, keeping its field order.
    pub(crate) fn from_serialize<T: Serialize + ?Sized>(
        value: &T,
    ) -> Result<Self, serde_json::Error> {
        Json::parse(&serde_json::to_vec(value)?)
    }
}

/// A place in a document, printed as `$.events[3].input.payloads[0]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct JsonPath {
    steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// The field at this position of an object, and its name.
    Field(usize, String),
    /// The item at this index of an array.
    Index(usize),
}

impl JsonPath {
    /// This path, then the object field at `position` named `name`.
    pub(crate) fn field(&self, position: usize, name: &str) -> Self {
        let mut steps = self.steps.clone();
        steps.push(Step::Field(position, name.to_owned()));
        Self { steps }
    }

    /// This path, then the array item at `index`.
    pub(crate) fn index(&self, index: usize) -> Self {
        let mut steps = self.steps.clone();
        steps.push(Step::Index(index));
        Self { steps }
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for step in &self.steps {
            match step {
                Step::Field(_, name)
                    if !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    write!(f, ".{name}")?;
                }
                Step::Field(_, name) => write!(f, "[{}]", serde_json::Value::from(name.as_str()))?,
                Step::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a JSON number must be finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields: Vec<(String, Json)> = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            // A repeated key: the last one wins, as with serde_json.
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some(field) => field.1 = value,
                None => fields.push((key, value)),
            }
        }
        Ok(Json::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_prints_like_the_temporal_cli() {
        let text = "{\n  \"zeta\": 1,\n  \"alpha\": [\n    true,\n    null,\n    1.5\n  ],\n  \"empty\": {},\n  \"list\": []\n}\n";
        let doc = Json::parse(text.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(doc.to_pretty()).unwrap(), text);
    }

    #[test]
    fn paths_walk_and_print() {
        let doc = Json::parse(br#"{"events":[{"a b":{"x":7}}]}"#).unwrap();
        let path = JsonPath::default()
            .field(0, "events")
            .index(0)
            .field(0, "a b")
            .field(0, "x");
        assert_eq!(path.to_string(), r#"$.events[0]["a b"].x"#);
        assert_eq!(doc.at(&path), Some(&Json::Number(7.into())));
        assert_eq!(doc.at(&JsonPath::default().index(3)), None);
    }

    #[test]
    fn big_and_precise_numbers_survive() {
        let text = br#"[18446744073709551615,-9223372036854775808,0.1,1e-7]"#;
        let doc = Json::parse(text).unwrap();
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            "[18446744073709551615,-9223372036854775808,0.1,1e-7]"
        );
    }
}
