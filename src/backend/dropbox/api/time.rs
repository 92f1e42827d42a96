//! Dropbox timestamps: `YYYY-MM-DDTHH:MM:SSZ`, UTC, whole seconds.
//!
//! Dropbox refuses other forms (fractions, offsets) in arguments such as `client_modified`, so
//! everything we send goes through [`timestamp`]; [`parse_timestamp`] reads what Dropbox returns.

use chrono::{DateTime, NaiveDateTime};

const FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// Formats seconds since the Unix epoch as a Dropbox timestamp.
///
/// Times chrono cannot represent (hundreds of thousands of years away) become the epoch:
/// an SFTP client sending such an mtime gets a harmless, obviously wrong date, not a failure.
pub fn timestamp(unix_secs: i64) -> String {
    DateTime::from_timestamp(unix_secs, 0)
        .unwrap_or_default()
        .format(FORMAT)
        .to_string()
}

/// Parses a Dropbox timestamp into seconds since the Unix epoch.
///
/// Also accepts any RFC 3339 time (fractions, offsets) in case a server is less strict than
/// Dropbox itself.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    if let Ok(naive) = NaiveDateTime::parse_from_str(text, FORMAT) {
        return Some(naive.and_utc().timestamp());
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_whole_seconds_in_utc() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_431_445_838), "2015-05-12T15:50:38Z");
    }

    #[test]
    fn parses_what_it_formats() {
        for secs in [0, 1_431_445_838, 4_102_444_800, -86_400] {
            assert_eq!(parse_timestamp(&timestamp(secs)), Some(secs));
        }
    }

    #[test]
    fn parses_rfc3339_variants_and_rejects_garbage() {
        assert_eq!(
            parse_timestamp("2015-05-12T15:50:38.5Z"),
            Some(1_431_445_838)
        );
        assert_eq!(
            parse_timestamp("2015-05-12T17:50:38+02:00"),
            Some(1_431_445_838)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
