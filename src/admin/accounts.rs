//! The accounts page: each Dropbox account's health, and the Connect form.
//!
//! Nothing secret is rendered: not the app secret, not a token; the token file's path is
//! shown so an operator knows where it is.

use std::fmt::Write;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};

use super::extract::SignedIn;
use super::html::{self, escape, Nav};
use super::Admin;
use crate::gateway::control::AccountStatus;

/// GET /accounts.
pub async fn page(State(admin): State<Arc<Admin>>, session: SignedIn) -> Response {
    let accounts = admin.control.accounts();
    let now = SystemTime::now();
    let mut rows = String::new();
    for account in &accounts {
        rows.push_str(&row(account, now, &session.csrf));
    }
    if accounts.is_empty() {
        rows.push_str(
            "<tr><td colspan=\"7\" class=\"muted\">No account yet: connect one below.</td></tr>",
        );
    }
    let body = format!(
        "<h1>Dropbox accounts</h1>{}\
         <div class=\"table\"><table id=\"accounts\"><thead><tr><th>Account</th><th>Status</th>\
         <th>Signed in as</th><th>Kind</th><th class=\"wide\">Access token</th><th>Last error</th>\
         <th>Users</th></tr></thead><tbody>{rows}</tbody></table></div>{}",
        session.flash_html(),
        connect_form(&admin, &session.csrf)
    );
    Html(html::page(
        "Accounts",
        Nav::Accounts,
        &session.viewer(),
        &body,
    ))
    .into_response()
}

/// How an account is doing, in one word, and its badge class.
pub fn health(account: &AccountStatus) -> (&'static str, &'static str) {
    if !account.connected {
        return ("not connected", "bad");
    }
    let failing = match (account.last_error_at, account.last_ok_at) {
        (Some(error), Some(ok)) => error > ok,
        (Some(_), None) => true,
        _ => false,
    };
    match failing {
        true => ("failing", "warn"),
        false => ("healthy", "ok"),
    }
}

fn row(account: &AccountStatus, now: SystemTime, csrf: &str) -> String {
    let (word, class) = health(account);
    let who = match (&account.email, &account.team_member_email) {
        (Some(email), _) => escape(email),
        (None, Some(member)) => escape(member),
        (None, None) => "<span class=\"muted\">unknown</span>".to_string(),
    };
    let kind = match (account.team, &account.team_space_root) {
        (_, Some(root)) => format!("team space <span class=\"mono\">{}</span>", escape(root)),
        (true, None) => "team member".to_string(),
        (false, None) => "personal".to_string(),
    };
    let token = match account.token_expires_at {
        Some(at) if at > now => format!(
            "<span title=\"{}\">expires {}</span>",
            html::time(at),
            html::relative(at, now)
        ),
        Some(at) => format!(
            "<span title=\"{}\">expired {}</span>",
            html::time(at),
            html::relative(at, now)
        ),
        None => "<span class=\"muted\">none yet</span>".to_string(),
    };
    let error = match (&account.last_error, account.last_error_at) {
        (Some(text), Some(at)) => format!(
            "<span class=\"muted\">{}</span><br>{}",
            html::relative(at, now),
            escape(text)
        ),
        (Some(text), None) => escape(text),
        _ => "<span class=\"muted\">none</span>".to_string(),
    };
    let users = match account.users.is_empty() {
        true => "<span class=\"muted\">none</span>".to_string(),
        false => escape(&account.users.join(", ")),
    };
    let reconnect = match account.credentials_in_config {
        true => String::new(),
        false => format!(
            "<form method=\"post\" action=\"/accounts/connect\">{}\
             <input type=\"hidden\" name=\"name\" value=\"{}\">\
             <button type=\"submit\" class=\"reconnect\">Re-connect</button></form>",
            html::csrf_field(csrf),
            escape(&account.name)
        ),
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<tr data-account=\"{name}\"><td><strong>{name}</strong>{reconnect}</td>\
         <td><span class=\"badge {class}\">{word}</span></td><td>{who}</td><td>{kind}</td>\
         <td class=\"wide\">{token}</td><td>{error}</td><td>{users}</td></tr>",
        name = escape(&account.name),
    );
    out
}

fn connect_form(admin: &Admin, csrf: &str) -> String {
    let redirect_uri = admin.redirect_uri();
    format!(
        "<h2>Connect Dropbox</h2>\
         <form class=\"card\" id=\"connect\" method=\"post\" action=\"/accounts/connect\">{}\
         <p class=\"hint\">Register this redirect URI for the app in the Dropbox App Console: \
         <code>{}</code></p>\
         <label for=\"name\">Account name</label>\
         <input type=\"text\" id=\"name\" name=\"name\" required pattern=\"[A-Za-z0-9_\\-][A-Za-z0-9._\\-]*\">\
         <p class=\"hint\">What users' <code>account</code> names. A name the config declares is \
         connected into its own token file.</p>\
         <label for=\"app_key\">App key</label>\
         <input type=\"text\" id=\"app_key\" name=\"app_key\" autocomplete=\"off\">\
         <p class=\"hint\">Or <code>KEY~SECRET</code>, both in one. Leave empty to re-connect \
         with the app of the account's token file.</p>\
         <label for=\"app_secret\">App secret</label>\
         <input type=\"password\" id=\"app_secret\" name=\"app_secret\" autocomplete=\"off\">\
         <label for=\"team_member_email\">Team member email (Dropbox Business)</label>\
         <input type=\"email\" id=\"team_member_email\" name=\"team_member_email\">\
         <label class=\"check\"><input type=\"checkbox\" name=\"team_space\" value=\"on\"> \
         Start at the team space (team folders visible)</label>\
         <button type=\"submit\">Connect Dropbox</button></form>",
        html::csrf_field(csrf),
        escape(&redirect_uri)
    )
}
