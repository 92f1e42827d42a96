//! The headers every answer carries, and the embedded assets.
//!
//! The Content-Security-Policy allows only this page's own stylesheet and script (no inline
//! script or style, no other origin), no frames around it, and forms that post here or go on
//! to the Dropbox authorize page (Chromium checks a form's redirects against `form-action`
//! too, and Connect answers with a redirect to Dropbox). Pages are never cached: they show
//! accounts and users, and a shared computer's back button should not.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::Admin;
use crate::backend::dropbox::api::oauth::AUTHORIZE_BASE;

const STYLESHEET: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/live.js");

pub async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}

pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// Adds the security headers to every answer.
pub async fn headers(State(admin): State<Arc<Admin>>, mut response: Response) -> Response {
    let policy = content_security_policy(&authorize_origins(&admin));
    let set = response.headers_mut();
    let mut put = |name: HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            set.insert(name, value);
        }
    };
    put(header::CONTENT_SECURITY_POLICY, &policy);
    put(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    put(header::X_FRAME_OPTIONS, "DENY");
    put(header::REFERRER_POLICY, "no-referrer");
    put(header::CACHE_CONTROL, "no-store");
    if admin.secure() {
        put(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    response
}

/// The origins a Connect form may be redirected to: Dropbox's authorize page, and the API URL
/// of each account that names one (an emulator), and the page's own for new accounts.
fn authorize_origins(admin: &Admin) -> Vec<String> {
    let mut bases: Vec<String> = vec![AUTHORIZE_BASE.to_string()];
    bases.extend(admin.settings.api_url.clone());
    bases.extend(
        admin
            .control
            .accounts()
            .into_iter()
            .filter_map(|account| admin.control.account_config(&account.name))
            .filter_map(|config| config.api_url),
    );
    let mut origins: Vec<String> = bases
        .iter()
        .filter_map(|base| url::Url::parse(base).ok())
        .map(|url| url.origin().ascii_serialization())
        .filter(|origin| origin != "null")
        .collect();
    origins.sort();
    origins.dedup();
    origins
}

fn content_security_policy(form_targets: &[String]) -> String {
    format!(
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self' {}; frame-ancestors 'none'; base-uri 'none'",
        form_targets.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_nothing_inline_and_no_other_origin_but_the_authorize_page() {
        let policy = content_security_policy(&["https://www.dropbox.com".to_string()]);
        assert!(policy.contains("default-src 'none'"));
        assert!(policy.contains("script-src 'self';"));
        assert!(!policy.contains("unsafe-inline"));
        assert!(policy.contains("form-action 'self' https://www.dropbox.com;"));
        assert!(policy.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn the_assets_are_embedded() {
        assert!(STYLESHEET.contains("--accent"));
        assert!(SCRIPT.contains("/activity/live") || SCRIPT.contains("data-source"));
    }
}
