//! The users page: who may log in, as the config says (read-only), and when each last did;
//! with a button that reloads the config, as SIGHUP does.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, State};
use axum::response::{Html, IntoResponse, Response};

use super::extract::{SignedForm, SignedIn};
use super::html::{self, escape, Nav};
use super::tls::Peer;
use super::{see_other, Admin, Outcome};

/// GET /users.
pub async fn page(State(admin): State<Arc<Admin>>, session: SignedIn) -> Response {
    let last_logins = admin.activity.last_logins();
    let now = SystemTime::now();
    let mut rows = String::new();
    for user in admin.control.users() {
        let last = match last_logins.get(&user.name) {
            Some(login) => format!(
                "{}<br><span class=\"muted\">from {}</span>",
                html::relative(login.time, now),
                escape(&login.remote)
            ),
            None => "<span class=\"muted\">not since start</span>".to_string(),
        };
        let keys = match user.key_fingerprints.is_empty() {
            true => "<span class=\"muted\">none</span>".to_string(),
            false => user
                .key_fingerprints
                .iter()
                .map(|key| format!("<code>{}</code>", escape(key)))
                .collect::<Vec<_>>()
                .join("<br>"),
        };
        let root = match user.dropbox_root.as_str() {
            "" => "/ (the whole Dropbox)".to_string(),
            root => escape(root),
        };
        rows.push_str(&format!(
            "<tr data-user=\"{name}\"><td><strong>{name}</strong>{password}</td><td>{account}</td>\
             <td class=\"mono\">{root}</td><td>{permissions}</td><td class=\"wide\">{keys}</td>\
             <td>{networks}</td><td>{last}</td></tr>",
            name = escape(&user.name),
            password = if user.has_password {
                "<br><span class=\"muted\">password</span>"
            } else {
                ""
            },
            account = escape(&user.account),
            permissions = escape(&user.permissions),
            networks = escape(user.allowed_networks.as_deref().unwrap_or("anywhere")),
        ));
    }
    let body = format!(
        "<h1>Users</h1>{}<p class=\"muted\">From the config file, read-only. Edit the file, then \
         reload: sessions already logged in keep their settings until they disconnect.</p>\
         <form method=\"post\" action=\"/users/reload\">{}<button type=\"submit\" id=\"reload\">\
         Reload config</button></form>\
         <div class=\"table\"><table id=\"users\"><thead><tr><th>User</th><th>Account</th>\
         <th>Dropbox folder</th><th>Permissions</th><th class=\"wide\">Keys</th>\
         <th>Allowed from</th><th>Last login</th></tr></thead><tbody>{rows}</tbody></table></div>",
        session.flash_html(),
        html::csrf_field(&session.csrf)
    );
    Html(html::page("Users", Nav::Users, &session.viewer(), &body)).into_response()
}

/// POST /users/reload: the same as SIGHUP.
pub async fn reload(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    SignedForm { session, .. }: SignedForm,
) -> Response {
    const RELOAD: &str = "reload_config";
    match admin.control.reload().await {
        Ok(reloaded) => {
            let accounts = match reloaded.accounts_connected.is_empty() {
                true => String::new(),
                false => format!(
                    "; accounts signed in: {}",
                    reloaded.accounts_connected.join(", ")
                ),
            };
            let message = format!(
                "Reloaded: {} users, {} trusted user CAs{accounts}. Other settings change only \
                 with a restart.",
                reloaded.users, reloaded.trusted_user_cas
            );
            admin.report(&peer, &session, RELOAD, None, Outcome::Ok, message);
        }
        Err(e) => {
            let why = format!("{e:#}");
            let message = format!("The reload failed and nothing changed: {why}");
            admin.report(
                &peer,
                &session,
                RELOAD,
                None,
                Outcome::Failed(&why),
                message,
            );
        }
    }
    see_other("/users")
}
