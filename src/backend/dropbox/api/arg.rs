//! The `Dropbox-API-Arg` encoder: JSON that is safe to put in an HTTP header.
//!
//! Upload and download routes carry their arguments as JSON in a header. HTTP headers must be
//! ASCII, and Dropbox wants every character at or above U+007F written as a `\uXXXX` escape
//! (characters above U+FFFF as a UTF-16 surrogate pair). serde_json writes such characters raw,
//! so we post-process its output. Escaping is safe anywhere in the text because serde_json only
//! emits non-ASCII characters inside JSON strings, where `\uXXXX` means the same character.

use serde::Serialize;

/// Serialises `value` as JSON with every character ≥ U+007F escaped, ready for a header.
pub fn to_header_json<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(value)?;
    Ok(escape_non_ascii(&json))
}

/// Escapes every character ≥ U+007F in already-valid JSON text as `\uXXXX`.
pub fn escape_non_ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut units = [0u16; 2];
    for c in json.chars() {
        if (c as u32) < 0x7F {
            out.push(c);
            continue;
        }
        // encode_utf16 yields one unit, or a surrogate pair above U+FFFF: exactly JSON's form.
        for unit in c.encode_utf16(&mut units) {
            out.push_str(&format!("\\u{unit:04x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_accents_cjk_and_astral_characters() {
        let value = json!({ "path": "/résumé 日本 🎉.txt" });
        let header = to_header_json(&value).unwrap();
        assert_eq!(
            header,
            r#"{"path":"/r\u00e9sum\u00e9 \u65e5\u672c \ud83c\udf89.txt"}"#
        );
    }

    #[test]
    fn output_is_ascii_and_parses_back_to_the_same_value() {
        let value = json!({ "path": "/résumé 日本 🎉.txt", "del": "\u{7f}", "q": "a\"b\\c" });
        let header = to_header_json(&value).unwrap();
        assert!(
            header.bytes().all(|b| (0x20..0x7F).contains(&b)),
            "{header}"
        );
        let back: serde_json::Value = serde_json::from_str(&header).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn plain_ascii_is_unchanged() {
        let value = json!({ "path": "/a/b.txt", "n": 5 });
        assert_eq!(
            to_header_json(&value).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
    }
}
