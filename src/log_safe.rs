//! Text that came from a client, made safe for the operational log.
//!
//! File names, subsystem names and certificate reasons arrive from the network (or from a
//! Dropbox folder that someone else filled). Written raw, a name holding a newline starts a
//! forged log line, and one holding an ANSI escape repaints the operator's terminal. Every such
//! value goes into a log line through [`Untrusted`]: control characters (C0, DEL, C1) and the
//! invisible characters that reorder text (bidi controls, line and paragraph separators) are
//! escaped the way Rust writes them (`\n`, `\u{1b}`); printable text in any script stays as it
//! is. The audit log needs none of this: it is JSON, whose strings escape control characters.

use std::fmt::{self, Display, Write};

/// Displays its value with the characters that could forge or hide log text escaped.
pub struct Untrusted<T>(pub T);

impl<T: Display> Display for Untrusted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaping(f), "{}", self.0)
    }
}

impl<T: Display> fmt::Debug for Untrusted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Display::fmt(self, f)
    }
}

/// A writer that escapes what it passes on, so the value is never collected into a String.
struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for Escaping<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut clean_from = 0;
        for (at, c) in text.char_indices() {
            if needs_escape(c) {
                self.0.write_str(&text[clean_from..at])?;
                write!(self.0, "{}", c.escape_default())?;
                clean_from = at + c.len_utf8();
            }
        }
        self.0.write_str(&text[clean_from..])
    }
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::Untrusted;

    #[test]
    fn line_breaks_and_terminal_escapes_are_written_as_escapes() {
        let forged = "report.csv\n2026-12-01T00:00:00Z INFO login accepted user=root";
        let shown = Untrusted(forged).to_string();
        assert!(!shown.contains('\n'), "{shown}");
        assert!(shown.starts_with("report.csv\\n2026"), "{shown}");
        assert_eq!(
            Untrusted("\u{1b}[2Jx\r\u{7f}\u{9b}").to_string(),
            "\\u{1b}[2Jx\\r\\u{7f}\\u{9b}"
        );
        assert_eq!(
            Untrusted("invoice\u{202e}fdp.exe").to_string(),
            "invoice\\u{202e}fdp.exe"
        );
    }

    #[test]
    fn printable_text_in_any_script_is_unchanged() {
        for name in ["résumé 日本 🎉.txt", "a b/c\\d", "tab-free", ""] {
            assert_eq!(Untrusted(name).to_string(), name);
        }
    }
}
