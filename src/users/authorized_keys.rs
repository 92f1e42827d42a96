//! authorized_keys lines with their options, as sshd(8) reads them ("AUTHORIZED_KEYS FILE
//! FORMAT"): `[options] keytype base64 [comment]`.
//!
//! An option restricts the key, so an option that is not honoured grants more than the operator
//! wrote. dropgate honours `from="patterns"` (checked against the client's real address, the one
//! a PROXY header carries behind a load balancer) and `expiry-time="YYYYMMDD[HHMM[SS]][Z]"`.
//! `restrict`, the `no-*` options and the options that permit forwarding, a pty or
//! `~/.ssh/rc` are accepted because dropgate offers none of those things: with or without them
//! a key gets exactly the SFTP subsystem. Every other option (`command=`, `permitopen=`,
//! `cert-authority`, `environment=`, ...) asks for something dropgate does not do, and the line
//! is refused when the config loads, so the operator finds out at once rather than a key
//! silently logging in without the restriction.
//!
//! The options field is split here rather than by `ssh_key`'s `Entry`: that one ends the
//! options at the first space even inside quotes, does not know the `\"` escape, and takes a
//! line with options but no comment for a bare key. The grammar is small (comma-separated
//! `name` or `name="value"`, the field ending at the first whitespace outside quotes); the
//! fuzz target `authorized_keys_line` runs it on arbitrary input.

use std::net::IpAddr;

use chrono::{NaiveDateTime, TimeZone};
use russh::keys::PublicKey;

use super::networks::AddressPatterns;

/// One authorized key and the restrictions its line put on it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizedKey {
    pub key: PublicKey,
    /// `from=`: the client addresses it may log in from; None: any.
    pub from: Option<AddressPatterns>,
    /// `expiry-time=`: seconds since 1970 after which it no longer logs in.
    pub expires: Option<i64>,
}

/// One option as written: its name, and the unquoted value of `name="value"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOption {
    pub name: String,
    pub value: Option<String>,
}

/// Options that change nothing in dropgate, which only ever offers the SFTP subsystem.
const ACCEPTED_FLAGS: &[&str] = &[
    "restrict",
    "no-agent-forwarding",
    "no-port-forwarding",
    "no-pty",
    "no-user-rc",
    "no-x11-forwarding",
    // dropgate does not ask security keys for a touch in the first place.
    "no-touch-required",
    "agent-forwarding",
    "port-forwarding",
    "pty",
    "user-rc",
    "x11-forwarding",
];

impl AuthorizedKey {
    /// Parses one line (not blank, not a comment). The error says what is wrong without
    /// quoting the key.
    pub fn parse(line: &str) -> Result<AuthorizedKey, String> {
        let line = line.trim();
        if let Ok(key) = PublicKey::from_openssh(line) {
            return Ok(AuthorizedKey {
                key,
                from: None,
                expires: None,
            });
        }
        let (options, key_text) = split_options(line)?;
        let key = PublicKey::from_openssh(key_text)
            .map_err(|e| format!("the key after the options does not parse: {e}"))?;
        let mut parsed = AuthorizedKey {
            key,
            from: None,
            expires: None,
        };
        for option in &options {
            parsed.apply(option)?;
        }
        Ok(parsed)
    }

    fn apply(&mut self, option: &KeyOption) -> Result<(), String> {
        let name = option.name.to_ascii_lowercase();
        match (name.as_str(), &option.value) {
            ("from", Some(patterns)) => {
                if self.from.is_some() {
                    return Err("more than one from= option".into());
                }
                let parsed = AddressPatterns::parse(patterns).map_err(|e| format!("from=: {e}"))?;
                self.from = Some(parsed);
            }
            ("expiry-time", Some(time)) => {
                let at = parse_expiry_time(time)?;
                // Several: the earliest holds, as in sshd.
                self.expires = Some(self.expires.map_or(at, |earlier| earlier.min(at)));
            }
            (flag, None) if ACCEPTED_FLAGS.contains(&flag) => {}
            ("from" | "expiry-time", None) => {
                return Err(format!("option {} needs a quoted value", option.name))
            }
            _ => {
                return Err(format!(
                    "option {} is not supported by dropgate; remove it or the line",
                    option.name
                ))
            }
        }
        Ok(())
    }

    /// Whether this key may log in from `peer` at `now` (seconds since 1970); the reason if
    /// not, for the server's log.
    pub fn check(&self, peer: IpAddr, now: i64) -> Result<(), String> {
        if let Some(from) = &self.from {
            if !from.allows(peer) {
                return Err(format!("the key's from= option does not allow {peer}"));
            }
        }
        if let Some(expires) = self.expires {
            if expires < now {
                return Err("the key's expiry-time has passed".into());
            }
        }
        Ok(())
    }
}

/// Splits the options field off the start of `line`: the options, and the rest of the line
/// (the key). Options are `name` or `name="value"` separated by commas; inside quotes `\"` is
/// a quote, and the field ends at the first whitespace outside quotes.
pub fn split_options(line: &str) -> Result<(Vec<KeyOption>, &str), String> {
    let mut options = Vec::new();
    let mut rest = line;
    loop {
        let name_end = rest
            .find(|c: char| c == '=' || c == ',' || c.is_whitespace() || c == '"')
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        if name.is_empty() {
            return Err("an option is empty or malformed".into());
        }
        rest = &rest[name_end..];
        let value = match rest.strip_prefix('=') {
            Some(quoted) => {
                let (value, after) = dequote(quoted)?;
                rest = after;
                Some(value)
            }
            None => None,
        };
        options.push(KeyOption {
            name: name.to_string(),
            value,
        });
        match rest.chars().next() {
            Some(',') => rest = &rest[1..],
            Some(c) if c.is_whitespace() => return Ok((options, rest.trim_start())),
            None => return Err("there is no key after the options".into()),
            Some(_) => return Err(format!("unexpected text after option {name}")),
        }
    }
}

/// `"value"` at the start of `text`: the value with `\"` unescaped, and what follows it.
fn dequote(text: &str) -> Result<(String, &str), String> {
    let body = text
        .strip_prefix('"')
        .ok_or("an option's value must be in double quotes")?;
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &body[i + 1..])),
            '\\' if body[i + 1..].starts_with('"') => {
                chars.next();
                value.push('"');
            }
            c => value.push(c),
        }
    }
    Err("an option's value has no closing quote".into())
}

/// `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, in the system's time zone, or in UTC with a
/// trailing `Z` (sshd's format); seconds since 1970.
fn parse_expiry_time(text: &str) -> Result<i64, String> {
    let bad = || format!("expiry-time={text:?} is not YYYYMMDD[HHMM[SS]][Z]");
    let (digits, utc) = match text.strip_suffix(['Z', 'z']) {
        Some(digits) => (digits, true),
        None => (text, false),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let padded = match digits.len() {
        8 => format!("{digits}000000"),
        12 => format!("{digits}00"),
        14 => digits.to_string(),
        _ => return Err(bad()),
    };
    let local = NaiveDateTime::parse_from_str(&padded, "%Y%m%d%H%M%S").map_err(|_| bad())?;
    let at = if utc {
        local.and_utc()
    } else {
        // A time skipped by a clock change has no local reading; take the one after the gap.
        chrono::Local
            .from_local_datetime(&local)
            .earliest()
            .or_else(|| {
                let after_gap = local.checked_add_signed(chrono::Duration::hours(1))?;
                chrono::Local.from_local_datetime(&after_gap).earliest()
            })
            .ok_or_else(bad)?
            .to_utc()
    };
    Ok(at.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_bare_key_with_or_without_comment_has_no_restrictions() {
        for line in [KEY.to_string(), format!("{KEY} alice@laptop with spaces")] {
            let key = AuthorizedKey::parse(&line).unwrap();
            assert_eq!(key.from, None);
            assert_eq!(key.expires, None);
            assert_eq!(key.check(ip("203.0.113.1"), i64::MAX), Ok(()));
        }
    }

    #[test]
    fn from_and_expiry_time_are_honoured() {
        let line = format!(r#"from="10.9.9.9",expiry-time="20000101" {KEY}"#);
        let key = AuthorizedKey::parse(&line).unwrap();
        let now = 1_800_000_000;
        assert!(key.check(ip("127.0.0.1"), 0).is_err(), "wrong address");
        let err = key.check(ip("10.9.9.9"), now).unwrap_err();
        assert!(err.contains("expiry-time"), "{err}");

        let utc = AuthorizedKey::parse(&format!(r#"expiry-time="203001020304Z" {KEY} c"#)).unwrap();
        assert_eq!(utc.expires, Some(1_893_553_440));
        assert_eq!(utc.check(ip("127.0.0.1"), now), Ok(()));
        let earliest = format!(r#"expiry-time="20300102030405Z",EXPIRY-TIME="20290101Z" {KEY}"#);
        assert_eq!(
            AuthorizedKey::parse(&earliest).unwrap().expires,
            Some(1_861_920_000)
        );
    }

    #[test]
    fn accepted_flags_and_refused_options() {
        let ok = format!("restrict,no-pty,No-Port-Forwarding,no-X11-forwarding {KEY}");
        assert!(AuthorizedKey::parse(&ok).is_ok());
        for refused in [
            r#"command="/bin/true""#,
            r#"permitopen="localhost:80""#,
            "cert-authority",
            r#"environment="A=b""#,
            "verify-required",
        ] {
            let err = AuthorizedKey::parse(&format!("{refused} {KEY}")).unwrap_err();
            assert!(err.contains("not supported"), "{refused}: {err}");
        }
        for malformed in [
            format!(r#"from=10.0.0.1 {KEY}"#),
            format!(r#"from="10.0.0.1 {KEY}"#),
            format!(r#"from="10.0.0.1",from="10.0.0.2" {KEY}"#),
            format!(r#"expiry-time="2020" {KEY}"#),
            format!(r#"expiry-time="20201301" {KEY}"#),
            format!(r#"from {KEY}"#),
            format!(",restrict {KEY}"),
            "restrict".to_string(),
            "ssh-ed25519 AAAAnotbase64".to_string(),
        ] {
            assert!(AuthorizedKey::parse(&malformed).is_err(), "{malformed}");
        }
    }

    #[test]
    fn quoted_values_may_hold_commas_spaces_and_escaped_quotes() {
        let (options, rest) =
            split_options(r#"from="a, b",x="say \"hi\"",restrict  ssh-ed25519 AAAA c"#).unwrap();
        assert_eq!(rest, "ssh-ed25519 AAAA c");
        let values: Vec<_> = options.iter().map(|o| o.value.as_deref()).collect();
        assert_eq!(values, [Some("a, b"), Some(r#"say "hi""#), None]);
        assert_eq!(options[2].name, "restrict");
    }
}
