//! Signing in and out.
//!
//! The form is a plain HTML form (`username`, `password` and a hidden `csrf`), so any HTTP
//! client can sign in. Its token is double-submitted: the same random value is in a cookie and
//! in the form, and a post whose two differ is refused before any password is looked at.
//! Failed sign-ins count against the client's address in the SSH server's own ban logic
//! (`crate::ssh::guard`): guessing here bans the address for SSH too, and an address banned
//! for SSH guessing cannot sign in here. Password checks share the SSH server's bound on
//! argon2id checks at once, and an unknown name costs the same check as a wrong password.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::extract::SignedForm;
use super::html;
use super::sessions::{self, LOGIN_COOKIE, SESSION_COOKIE};
use super::tls::Peer;
use super::{form_value, see_other, Admin, Outcome};

/// How long the sign-in form's token lasts.
const LOGIN_FORM_SECS: u64 = 3600;

/// GET /login: the form (or the activity page for someone already signed in).
pub async fn form(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> Response {
    if admin.signed_in(&headers).is_some() {
        return Redirect::to("/activity").into_response();
    }
    form_page(&admin, StatusCode::OK, None)
}

/// The sign-in page with a fresh double-submit token in its cookie and its form.
fn form_page(admin: &Admin, status: StatusCode, problem: Option<&str>) -> Response {
    let token = sessions::random_token();
    let problem = problem
        .map(|text| html::flash(false, text))
        .unwrap_or_default();
    let body = format!(
        "<form class=\"card login\" method=\"post\" action=\"/login\"><h1>Sign in</h1>{problem}\
         {}<label for=\"username\">User name</label>\
         <input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus>\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Sign in</button></form>",
        html::csrf_field(&token)
    );
    let cookie = sessions::set_cookie(LOGIN_COOKIE, &token, admin.secure(), Some(LOGIN_FORM_SECS));
    (
        status,
        [(header::SET_COOKIE, cookie)],
        Html(html::bare_page("Sign in", &body)),
    )
        .into_response()
}

/// POST /login.
pub async fn submit(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let expected = sessions::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    let sent = form_value(&form, "csrf").unwrap_or_default();
    if !sessions::same_token(&expected, sent) {
        return form_page(
            &admin,
            StatusCode::FORBIDDEN,
            Some("The sign-in form had expired or was not sent from this page; try again."),
        );
    }
    let name = form_value(&form, "username").unwrap_or_default();
    let password = form_value(&form, "password").unwrap_or_default();
    let guard = admin.control.guard();
    let ip = peer.0.ip();
    if guard.is_banned(ip) {
        admin.audit(
            &peer,
            Some(name),
            "login",
            None,
            Outcome::Refused("address banned after failed logins"),
        );
        return form_page(
            &admin,
            StatusCode::FORBIDDEN,
            Some("Too many failed sign-ins from your address; wait and try again later."),
        );
    }
    let hash = admin
        .admins
        .iter()
        .find(|(admin_name, _)| admin_name == name)
        .map(|(_, hash)| hash.clone());
    // Without a hash (an unknown name) the check does the same work and answers false.
    let matched = guard
        .password_checks()
        .check(hash, password.to_string())
        .await;
    if !matched {
        let banned = guard.record_failure(ip);
        if banned {
            tracing::warn!(remote = %peer.0, "admin page: address banned after failed sign-ins");
        }
        admin.audit(
            &peer,
            Some(name),
            "login",
            None,
            Outcome::Failed("wrong user name or password"),
        );
        return form_page(
            &admin,
            StatusCode::UNAUTHORIZED,
            Some("Wrong user name or password."),
        );
    }
    let id = admin.sessions.create(name);
    admin.audit(&peer, Some(name), "login", None, Outcome::Ok);
    tracing::info!(admin = %crate::log_safe::Untrusted(name), remote = %peer.0, "admin signed in");
    let mut response = see_other("/activity");
    let set = response.headers_mut();
    set.append(
        header::SET_COOKIE,
        sessions::set_cookie(SESSION_COOKIE, &id, admin.secure(), None),
    );
    set.append(
        header::SET_COOKIE,
        sessions::set_cookie(LOGIN_COOKIE, "", admin.secure(), Some(0)),
    );
    response
}

/// POST /logout.
pub async fn logout(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    SignedForm { session, .. }: SignedForm,
) -> Response {
    admin.sessions.remove(&session.id);
    admin.audit(&peer, Some(&session.admin), "logout", None, Outcome::Ok);
    let mut response = see_other("/login");
    response.headers_mut().append(
        header::SET_COOKIE,
        sessions::set_cookie(SESSION_COOKIE, "", admin.secure(), Some(0)),
    );
    response
}
