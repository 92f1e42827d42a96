//! Dropbox path arguments: which forms a route accepts and what makes a path malformed.
//!
//! The spec gives each path argument a pattern (ReadPath, PathROrId, WritePath, WritePathOrId);
//! a value outside the pattern is a 400, while a value inside it that still breaks Dropbox's path
//! rules (empty or `.`/`..` components, trailing `/` or space, `\`, components over 255
//! characters) is the route error `malformed_path`. Paths are case-insensitive and
//! case-preserving: components keep their case here and are lowered by the store. Components
//! are normalised to NFC here, the one door every path argument comes through, as Dropbox
//! stores names NFC: a name sent in NFD (as macOS spells it) is stored and listed in NFC, and
//! either spelling finds it. The length limit counts characters of the NFC form.

use unicode_normalization::UnicodeNormalization;

/// Which forms a path argument may take, after the spec's path aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// ReadPath: `/...`, `id:...`, `rev:...`, `ns:N/...` (not the root).
    Read,
    /// PathROrId: the root `""`, `/...`, `id:...`, `ns:N/...`.
    ListRoot,
    /// WritePath: `/...`, `ns:N/...`.
    Write,
    /// WritePathOrId: `/...`, `ns:N/...`, `id:...`.
    WriteOrId,
}

impl PathKind {
    /// The pattern as the spec writes it, quoted in 400 messages like Dropbox does.
    fn pattern(self) -> &'static str {
        match self {
            PathKind::Read => r"(/(.|[\r\n])*|id:.*)|(rev:[0-9a-f]{9,})|(ns:[0-9]+(/(.|[\r\n])*)?)",
            PathKind::ListRoot => r"(/(.|[\r\n])*)?|id:.*|(ns:[0-9]+(/(.|[\r\n])*)?)",
            PathKind::Write => r"(/(.|[\r\n])*)|(ns:[0-9]+(/(.|[\r\n])*)?)",
            PathKind::WriteOrId => r"(/(.|[\r\n])*)|(ns:[0-9]+(/(.|[\r\n])*)?)|(id:.*)",
        }
    }
}

/// A path argument that matched its pattern and the path rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSpec {
    /// Components below the caller's root (empty = the root itself).
    Path(Vec<String>),
    /// `id:...`
    Id(String),
    /// `rev:...`
    Rev(String),
    /// `ns:N` plus components below that namespace.
    Namespace(String, Vec<String>),
}

/// Why a path argument was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathProblem {
    /// Outside the route's pattern: HTTP 400 with this text.
    BadRequest(String),
    /// Inside the pattern but not a valid Dropbox path: route error `malformed_path`.
    Malformed,
}

/// Longest allowed path component, in characters.
const MAX_COMPONENT_CHARS: usize = 255;

/// Names Dropbox will not store (compared case-insensitively).
const DISALLOWED_NAMES: [&str; 6] = [
    "desktop.ini",
    "thumbs.db",
    ".ds_store",
    "icon\r",
    ".dropbox",
    ".dropbox.attr",
];

/// Parses `raw`, the value of the argument `field`, as a path of `kind`.
pub fn parse_path(raw: &str, field: &str, kind: PathKind) -> Result<PathSpec, PathProblem> {
    let mismatch = || {
        PathProblem::BadRequest(format!(
            "{field}: '{raw}' did not match pattern '{}'",
            kind.pattern()
        ))
    };
    if raw.is_empty() {
        return match kind {
            PathKind::ListRoot => Ok(PathSpec::Path(Vec::new())),
            _ => Err(mismatch()),
        };
    }
    if raw == "/" && kind == PathKind::ListRoot {
        return Err(PathProblem::BadRequest(format!(
            "{field}: Specify the root folder as an empty string rather than as \"/\"."
        )));
    }
    if let Some(id) = raw.strip_prefix("id:") {
        return match kind {
            PathKind::Write => Err(mismatch()),
            _ if id.is_empty() => Err(PathProblem::Malformed),
            _ => Ok(PathSpec::Id(raw.to_string())),
        };
    }
    if let Some(rev) = raw.strip_prefix("rev:") {
        let is_rev = rev.len() >= 9 && rev.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        return match kind {
            PathKind::Read if is_rev => Ok(PathSpec::Rev(rev.to_string())),
            _ => Err(mismatch()),
        };
    }
    if let Some(rest) = raw.strip_prefix("ns:") {
        let (ns, below) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if ns.is_empty() || !ns.bytes().all(|b| b.is_ascii_digit()) {
            return Err(mismatch());
        }
        let components = if below.is_empty() {
            Vec::new()
        } else {
            components_of(below)?
        };
        return Ok(PathSpec::Namespace(ns.to_string(), components));
    }
    if !raw.starts_with('/') {
        return Err(mismatch());
    }
    Ok(PathSpec::Path(components_of(raw)?))
}

/// Splits `/a/b` into checked components.
fn components_of(path: &str) -> Result<Vec<String>, PathProblem> {
    let inner = path.strip_prefix('/').ok_or(PathProblem::Malformed)?;
    if inner.is_empty() {
        return Err(PathProblem::Malformed);
    }
    inner
        .split('/')
        .map(|component| {
            let component: String = component.nfc().collect();
            if is_valid_component(&component) {
                Ok(component)
            } else {
                Err(PathProblem::Malformed)
            }
        })
        .collect()
}

fn is_valid_component(component: &str) -> bool {
    !component.is_empty()
        && component != "."
        && component != ".."
        && !component.ends_with(' ')
        && !component.contains('\\')
        && !component.contains('\0')
        && component.chars().count() <= MAX_COMPONENT_CHARS
}

/// True for names Dropbox refuses to store (`disallowed_name`).
pub fn is_disallowed_name(name: &str) -> bool {
    let lower = name.to_lowercase();
    DISALLOWED_NAMES.contains(&lower.as_str())
}

/// The store key of a component list: `/a/b`, lowercased; the root is `""`.
pub fn lower_key(components: &[String]) -> String {
    components
        .iter()
        .map(|component| format!("/{}", component.to_lowercase()))
        .collect()
}

/// The display form of a component list: `/A/b`; the root is `""`.
pub fn display_path(components: &[String]) -> String {
    components
        .iter()
        .map(|component| format!("/{component}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(parts: &[&str]) -> PathSpec {
        PathSpec::Path(parts.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn accepts_the_forms_each_kind_allows() {
        assert_eq!(parse_path("", "path", PathKind::ListRoot), Ok(path(&[])));
        assert_eq!(
            parse_path("/A/résumé 日本 🎉.txt", "path", PathKind::Read),
            Ok(path(&["A", "résumé 日本 🎉.txt"]))
        );
        assert_eq!(
            parse_path("id:abc", "path", PathKind::WriteOrId),
            Ok(PathSpec::Id("id:abc".into()))
        );
        assert_eq!(
            parse_path("ns:2000/x", "path", PathKind::Write),
            Ok(PathSpec::Namespace("2000".into(), vec!["x".into()]))
        );
    }

    #[test]
    fn pattern_mismatches_are_bad_requests() {
        for (raw, kind) in [
            ("", PathKind::Read),
            ("/", PathKind::ListRoot),
            ("foo", PathKind::Write),
            ("id:abc", PathKind::Write),
            ("rev:12", PathKind::Read),
        ] {
            assert!(
                matches!(
                    parse_path(raw, "path", kind),
                    Err(PathProblem::BadRequest(_))
                ),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn broken_paths_are_malformed() {
        let long = format!("/{}", "x".repeat(256));
        for raw in [
            "/a/",
            "/a//b",
            "/a /b",
            "/a\\b",
            "/./a",
            "/a/..",
            long.as_str(),
            "/",
        ] {
            assert_eq!(
                parse_path(raw, "path", PathKind::Write),
                Err(PathProblem::Malformed),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn components_are_stored_nfc_and_limited_in_characters() {
        assert_eq!(
            parse_path("/Cafe\u{301}/a\u{308}.txt", "path", PathKind::Write),
            Ok(path(&["Caf\u{e9}", "\u{e4}.txt"]))
        );
        let japanese = format!("/{}", "日".repeat(255));
        assert!(japanese.len() > 256, "more than 255 bytes");
        assert!(parse_path(&japanese, "path", PathKind::Write).is_ok());
        let too_long = format!("/{}", "日".repeat(256));
        assert_eq!(
            parse_path(&too_long, "path", PathKind::Write),
            Err(PathProblem::Malformed)
        );
        // 255 characters once composed, though 510 code points as sent.
        let decomposed = format!("/{}", "e\u{301}".repeat(255));
        assert!(parse_path(&decomposed, "path", PathKind::Write).is_ok());
    }

    #[test]
    fn disallowed_names_ignore_case() {
        assert!(is_disallowed_name("Thumbs.DB"));
        assert!(is_disallowed_name("Icon\r"));
        assert!(!is_disallowed_name("icon"));
    }

    #[test]
    fn keys_are_lowercase_and_case_preserving_display_stays() {
        let parts = vec!["Ä".to_string(), "B".to_string()];
        assert_eq!(lower_key(&parts), "/ä/b");
        assert_eq!(display_path(&parts), "/Ä/B");
    }
}
