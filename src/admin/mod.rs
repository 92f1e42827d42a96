//! The admin web page: connect Dropbox accounts in a browser, see users, connections and
//! transfers as they happen.
//!
//! Off unless `[admin] listen` is set ([`settings`]). It is a small axum app beside the SSH
//! server, in the same process, looking at the running gateway through its [`Control`] handle
//! (accounts, users, reload, the ban logic, the audit log) and its live [`Activity`]. Each file
//! is one part of it: [`sessions`] (who is signed in, CSRF tokens), `login` (signing in and
//! out, counted by the SSH server's own ban logic), `connect` (the OAuth flow that ends at
//! `{external_url}/?command=register_dropbox_api`), one file per page (`accounts`, `users`,
//! `activity_page`), `html` (the frame and escaping), `tls` (HTTPS when configured) and
//! `security` (the headers every answer carries).
//!
//! Everything the page needs is in the binary (a stylesheet and a 30-line script); pages are
//! rendered on the server, and the activity page's script only fetches its live part again
//! every second. Every admin action (sign-in, sign-out, connect, reload) is an audit line of
//! event `admin`.

mod accounts;
mod activity_page;
mod connect;
mod extract;
mod html;
mod login;
mod pending;
mod security;
pub mod sessions;
pub mod settings;
mod tls;
mod users;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::activity::Activity;
use crate::audit_log::AuditEvent;
use crate::gateway::control::Control;
use crate::users::password::StoredPasswordHash;
use extract::SignedIn;
use sessions::{Sessions, SESSION_COOKIE};
use settings::AdminConfig;
use tls::{AdminListener, Peer};

/// A running admin page.
pub struct AdminServer {
    addr: SocketAddr,
    url: String,
    task: JoinHandle<()>,
}

impl AdminServer {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to open (the external URL, or the listening address when `listen` used port 0).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Waits until it has stopped (after the shutdown token given to [`start`] was cancelled).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// What every request handler can reach.
struct Admin {
    settings: AdminConfig,
    /// The page's own URL, without a trailing slash.
    url: String,
    admins: Vec<(String, StoredPasswordHash)>,
    sessions: Sessions,
    control: Control,
    activity: Arc<Activity>,
}

type Shared = State<Arc<Admin>>;

/// For check-config: whether the page's certificate and key load ("plain HTTP" without them).
pub fn check_tls(settings: &AdminConfig) -> anyhow::Result<String> {
    match (&settings.tls_certificate, &settings.tls_key) {
        (Some(certificate), Some(key)) => {
            tls::acceptor(certificate, key)?;
            Ok("HTTPS".to_string())
        }
        _ => Ok("plain HTTP".to_string()),
    }
}

/// Starts the admin page for `gateway` when `settings` turn it on; it runs as long as the
/// process.
pub async fn start_for(
    gateway: &crate::gateway::Gateway,
    settings: &AdminConfig,
) -> anyhow::Result<Option<AdminServer>> {
    if !settings.enabled() {
        return Ok(None);
    }
    let server = start(
        settings,
        gateway.control(),
        gateway.activity(),
        CancellationToken::new(),
    )
    .await?;
    Ok(Some(server))
}

/// Starts the admin page on `settings.listen` until `shutdown` is cancelled.
pub async fn start(
    settings: &AdminConfig,
    control: Control,
    activity: Arc<Activity>,
    shutdown: CancellationToken,
) -> anyhow::Result<AdminServer> {
    let listen = settings.listen.context("admin.listen is not set")?;
    let listener = AdminListener::bind(listen, settings).await?;
    let addr = listener.local_addr();
    // The bound address, not `listen`'s: with port 0 only the listener knows the port.
    let url = match settings.external_url {
        Some(_) => settings.external_url().expect("listen is set"),
        None => {
            let scheme = if settings.tls() { "https" } else { "http" };
            format!("{scheme}://{addr}")
        }
    };
    let admin = Arc::new(Admin {
        admins: settings.password_hashes()?,
        sessions: Sessions::new(Duration::from_secs(settings.session_idle_secs)),
        settings: settings.clone(),
        url: url.clone(),
        control,
        activity,
    });
    let app = router(admin);
    tracing::info!(%addr, url = %url, "admin page listening");
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
            .with_graceful_shutdown(async move { shutdown.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "the admin page stopped");
        }
    });
    Ok(AdminServer { addr, url, task })
}

fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/accounts", get(accounts::page))
        .route("/accounts/connect", post(connect::start))
        .route("/users", get(users::page))
        .route("/users/reload", post(users::reload))
        .route("/activity", get(activity_page::page))
        .route("/activity/live", get(activity_page::live))
        .route("/assets/style.css", get(security::stylesheet))
        .route("/assets/live.js", get(security::script))
        .fallback(not_found)
        .layer(axum::middleware::map_response_with_state(
            admin.clone(),
            security::headers,
        ))
        .with_state(admin)
}

/// `/`: Dropbox's redirect back (`?command=register_dropbox_api`), else the activity page.
async fn root(
    state: Shared,
    peer: ConnectInfo<Peer>,
    headers: HeaderMap,
    query: Query<Vec<(String, String)>>,
) -> Response {
    let is_redirect = query
        .0
        .iter()
        .any(|(key, value)| key == "command" && value == "register_dropbox_api");
    if is_redirect {
        return connect::finish(state, peer, headers, query).await;
    }
    Redirect::to("/activity").into_response()
}

async fn not_found() -> Response {
    let body = html::bare_page(
        "Not found",
        "<h1>Not found</h1><p><a href=\"/\">Back</a></p>",
    );
    (StatusCode::NOT_FOUND, Html(body)).into_response()
}

impl Admin {
    /// The request's session, if its cookie names a live one. Its flash message stays for the
    /// page that shows it (see [`SignedIn`]'s extractor), so the activity page's polling
    /// cannot take the message meant for the page another tab is about to load.
    fn signed_in(&self, headers: &HeaderMap) -> Option<SignedIn> {
        self.session(headers, false)
    }

    /// [`Admin::signed_in`], taking the flash message when `take_flash`.
    fn session(&self, headers: &HeaderMap, take_flash: bool) -> Option<SignedIn> {
        let id = sessions::cookie(headers, SESSION_COOKIE)?;
        self.sessions.with(&id, |session| SignedIn {
            id: id.clone(),
            admin: session.admin.clone(),
            csrf: session.csrf.clone(),
            flash: if take_flash {
                session.flash.take()
            } else {
                None
            },
        })
    }

    /// Served over TLS: cookies are `Secure`, and browsers are told to keep to HTTPS.
    fn secure(&self) -> bool {
        self.settings.tls()
    }

    /// Where Dropbox sends the browser back: this page's URL and the registration suffix.
    fn redirect_uri(&self) -> String {
        format!(
            "{}/{}",
            self.url,
            crate::backend::dropbox::authorization::REDIRECT_SUFFIX
        )
    }

    /// Leaves a message for the next page this session shows.
    fn flash(&self, session_id: &str, ok: bool, text: impl Into<String>) {
        let text = text.into();
        self.sessions
            .with(session_id, |session| session.flash = Some((ok, text)));
    }

    /// Audits a signed-in admin's action and leaves `message` for their next page (good news
    /// when the action went through).
    fn report(
        &self,
        peer: &Peer,
        session: &SignedIn,
        op: &'static str,
        account: Option<&str>,
        outcome: Outcome<'_>,
        message: String,
    ) {
        let ok = matches!(outcome, Outcome::Ok);
        self.audit(peer, Some(&session.admin), op, account, outcome);
        self.flash(&session.id, ok, message);
    }

    /// Writes an admin action to the audit log (`account`: the account it concerned).
    fn audit(
        &self,
        peer: &Peer,
        admin: Option<&str>,
        op: &'static str,
        account: Option<&str>,
        outcome: Outcome<'_>,
    ) {
        let (result, error) = match outcome {
            Outcome::Ok => ("ok", None),
            Outcome::Failed(why) => ("failed", Some(why.to_string())),
            Outcome::Refused(why) => ("refused", Some(why.to_string())),
        };
        let line = AuditEvent {
            time: crate::audit_log::now(),
            instance: crate::audit_log::instance(),
            event: "admin",
            remote: peer.0.to_string(),
            user: admin.map(str::to_string),
            op: Some(op),
            account: account.map(str::to_string),
            result: Some(result),
            error,
            ..AuditEvent::default()
        };
        self.control.audit().record(&line);
    }
}

/// How an admin action ended, for its audit line.
enum Outcome<'a> {
    Ok,
    Failed(&'a str),
    Refused(&'a str),
}

/// A form field's value.
fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn forbidden(text: &str) -> Response {
    let body = html::bare_page(
        "Refused",
        &format!(
            "<h1>Refused</h1>{}<p><a href=\"/\">Back</a></p>",
            html::flash(false, text)
        ),
    );
    (StatusCode::FORBIDDEN, Html(body)).into_response()
}

/// A 303 to `to` (after a form post, so a reload does not post again).
fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}
