//! Server-rendered HTML: the page frame, escaping, and how times and sizes read.
//!
//! Pages are plain `format!` strings; every value that came from outside (a user name, a
//! path, an email, an error from Dropbox) goes through [`escape`] on its way in, and nothing
//! else does, so the rule is easy to see in review. A template engine would add a build-time
//! dependency for five pages; the escaping is the part that matters and it is here, tested.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// Text made safe for HTML content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The pages in the navigation bar.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Activity,
    Accounts,
    Users,
}

impl Nav {
    const ALL: [(Nav, &'static str, &'static str); 3] = [
        (Nav::Activity, "/activity", "Activity"),
        (Nav::Accounts, "/accounts", "Accounts"),
        (Nav::Users, "/users", "Users"),
    ];
}

/// Who is looking at a page: the signed-in admin and their session's CSRF token.
pub struct Viewer<'a> {
    pub admin: &'a str,
    pub csrf: &'a str,
}

/// The hidden field every form carries.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(csrf)
    )
}

/// A whole page for a signed-in admin.
pub fn page(title: &str, current: Nav, viewer: &Viewer<'_>, body: &str) -> String {
    let mut nav = String::new();
    for (item, href, label) in Nav::ALL {
        let current = if item == current {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{href}\"{current}>{label}</a>");
    }
    let header = format!(
        "<header><span class=\"brand\">dropgate</span><nav>{nav}</nav>\
         <form method=\"post\" action=\"/logout\">{}<span class=\"who\">{}</span>\
         <button class=\"quiet\" type=\"submit\">Sign out</button></form></header>",
        csrf_field(viewer.csrf),
        escape(viewer.admin)
    );
    frame(title, &header, body, current == Nav::Activity)
}

/// A page with no navigation (sign-in, errors before sign-in).
pub fn bare_page(title: &str, body: &str) -> String {
    frame(
        title,
        "<header><span class=\"brand\">dropgate</span></header>",
        body,
        false,
    )
}

fn frame(title: &str, header: &str, body: &str, live: bool) -> String {
    let script = if live {
        "<script src=\"/assets/live.js\" defer></script>"
    } else {
        ""
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · dropgate</title><link rel=\"stylesheet\" href=\"/assets/style.css\">{script}\
         </head><body>{header}<main>{body}</main></body></html>",
        escape(title)
    )
}

/// A message box (`ok` green, else red).
pub fn flash(ok: bool, text: &str) -> String {
    let class = if ok { "ok" } else { "bad" };
    format!(
        "<div class=\"flash {class}\" role=\"status\">{}</div>",
        escape(text)
    )
}

/// A time as UTC, to the second.
pub fn time(at: SystemTime) -> String {
    let at: chrono::DateTime<chrono::Utc> = at.into();
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// How long ago (or, for a future time, how long until) `at`, in words.
pub fn relative(at: SystemTime, now: SystemTime) -> String {
    match now.duration_since(at) {
        Ok(ago) => format!("{} ago", duration(ago)),
        Err(ahead) => format!("in {}", duration(ahead.duration())),
    }
}

/// A duration in its largest sensible unit.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min {} s", secs / 60, secs % 60),
        3600..=86_399 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// A byte count in binary units (as sftp's progress meter shows them).
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{count} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_end_a_text_or_an_attribute() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(escape("plain/path ü.txt"), "plain/path ü.txt");
    }

    #[test]
    fn sizes_and_durations_read_naturally() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(200 * 1024 * 1024), "200.0 MiB");
        assert_eq!(duration(Duration::from_secs(75)), "1 min 15 s");
        assert_eq!(duration(Duration::from_secs(7260)), "2 h 1 min");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(relative(now - Duration::from_secs(5), now), "5 s ago");
        assert_eq!(
            relative(now + Duration::from_secs(120), now),
            "in 2 min 0 s"
        );
    }

    #[test]
    fn every_signed_in_page_carries_the_csrf_token_in_its_sign_out_form() {
        let viewer = Viewer {
            admin: "ad<min",
            csrf: "tok\"en",
        };
        let html = page("Users", Nav::Users, &viewer, "<p>x</p>");
        assert!(html.contains("value=\"tok&quot;en\""), "{html}");
        assert!(html.contains("ad&lt;min"));
        assert!(html.contains("href=\"/users\" aria-current=\"page\""));
        assert!(
            !html.contains("live.js"),
            "only the activity page runs the script"
        );
    }
}
