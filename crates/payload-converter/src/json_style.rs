//! How JSON text is written into payloads.
//!
//! The SDKs differ only in string escaping: Go, TypeScript and Java write
//! UTF-8 as is, Python (`json.dumps` with its default `ensure_ascii`) escapes
//! every character outside printable ASCII as `\uXXXX`. Both read each
//! other's output. [`JsonStyle::Utf8`] is the default; choose
//! [`JsonStyle::AsciiEscaped`] to produce Python's bytes exactly.

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, Serializer};

/// The escaping used when writing JSON into payloads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JsonStyle {
    /// Compact JSON, UTF-8 as is (as Go, TypeScript and Java write it).
    #[default]
    Utf8,
    /// Compact JSON, every character outside printable ASCII escaped as
    /// `\uXXXX` (UTF-16 units), as Python writes it.
    AsciiEscaped,
}

impl JsonStyle {
    /// Serializes `value` as compact JSON in this style.
    pub fn to_vec<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, serde_json::Error> {
        match self {
            JsonStyle::Utf8 => serde_json::to_vec(value),
            JsonStyle::AsciiEscaped => {
                let mut out = Vec::new();
                value.serialize(&mut Serializer::with_formatter(&mut out, AsciiFormatter))?;
                Ok(out)
            }
        }
    }
}

/// Compact output (the trait's defaults) with non-ASCII and DEL escaped like
/// Python's `ensure_ascii`.
struct AsciiFormatter;

impl Formatter for AsciiFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, ch) in fragment.char_indices() {
            if (' '..='~').contains(&ch) {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = i + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_escaped_matches_python_json_dumps() {
        // json.dumps("héllo ✓ 😀\x7f") in Python.
        let out = JsonStyle::AsciiEscaped
            .to_vec("héllo ✓ 😀\u{7f}\n\"")
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""h\u00e9llo \u2713 \ud83d\ude00\u007f\n\"""#
        );
    }

    #[test]
    fn utf8_keeps_characters() {
        let out = JsonStyle::Utf8
            .to_vec(&serde_json::json!({"k": "é"}))
            .unwrap();
        assert_eq!(out, "{\"k\":\"é\"}".as_bytes());
    }
}
