//! Connect Dropbox: the OAuth flow in the admin's browser, ending at the page's own
//! `{external_url}/?command=register_dropbox_api`.
//!
//! The Connect form's post plans the account (a name the config already declares with a
//! `token_file` keeps its settings and file; a new name goes to `[admin] accounts_dir`), makes a
//! PKCE verifier and a `state`, keeps both in the admin's session, and sends the browser to
//! Dropbox's authorize page. Dropbox sends it back with `code` and `state` (or `error` and
//! `error_description` when the admin cancelled or Dropbox refused); the answer is acted on
//! only in the session that started it, with the state it was given, once. The code is traded
//! for a refresh token, the token file is written (0600) beside the account's own, the gateway
//! signs the account in with it, and only then does it replace the account's token file and
//! serve the next logins, without a restart. A sign-in that fails (a team token for an account
//! without a member, say) leaves the old token file and the running account untouched.
//!
//! The session cookie is `SameSite=Strict`, so a browser coming back from dropbox.com (another
//! site) does not send it. The first answer then is a page that moves the browser on to the same
//! URL from this site, which does send it; a second arrival without a session is told to sign in
//! and start again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::extract::SignedForm;
use super::html::{self, escape};
use super::pending::Pending;
use super::settings::is_account_name;
use super::tls::Peer;
use super::{form_value, see_other, Admin, Outcome};
use crate::backend::dropbox::api::oauth::{self, AuthorizeParams, CodeExchange, AUTHORIZE_BASE};
use crate::backend::dropbox::api::{Endpoints, Secret};
use crate::backend::dropbox::authorization::{self, app_credentials, pkce, Authorized};
use crate::backend::dropbox::token_file::TokenFile;
use crate::config::AccountConfig;

/// The audit line's `op` for a Connect.
const CONNECT: &str = "connect_account";

/// How long Dropbox's answer is waited for.
const PENDING_FOR: Duration = Duration::from_secs(15 * 60);

/// POST /accounts/connect: plan, remember, send the browser to Dropbox.
pub async fn start(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    SignedForm { session, form }: SignedForm,
) -> Response {
    let name = form_value(&form, "name")
        .unwrap_or_default()
        .trim()
        .to_string();
    let (pending, url) = match plan(&admin, &form) {
        Ok(planned) => planned,
        Err(e) => {
            let why = format!("{e:#}");
            let message = format!("Cannot connect {name:?}: {why}");
            let refused = Outcome::Refused(&why);
            admin.report(&peer, &session, CONNECT, Some(&name), refused, message);
            return see_other("/accounts");
        }
    };
    admin
        .sessions
        .with(&session.id, |s| s.pending = Some(pending));
    tracing::info!(account = %name, admin = %crate::log_safe::Untrusted(&session.admin), "admin page: sending the browser to Dropbox to connect an account");
    see_other(url.as_str())
}

/// The pending Connect for the form, and the authorize URL to send the browser to.
fn plan(admin: &Admin, form: &[(String, String)]) -> anyhow::Result<(Pending, url::Url)> {
    let field = |name: &str| {
        form_value(form, name)
            .map(str::trim)
            .filter(|value| !value.is_empty())
    };
    let name = field("name").context("give the account a name")?;
    if !is_account_name(name) {
        bail!("an account name is letters, digits, '.', '_' and '-' (not starting with '.')");
    }
    let declared = admin.control.account_config(name);
    let (app_key, app_secret) = match field("app_key") {
        Some(key) => app_credentials(key, field("app_secret").map(str::to_string))?,
        None => app_of_token_file(declared.as_ref()).context(
            "give the app key and secret (only an account whose token file is still there can              be re-connected without them)",
        )?,
    };
    let team_member_email = field("team_member_email").map(str::to_string);
    let team_space = field("team_space").is_some();
    let (account, new_account) = match declared {
        Some(declared) => (
            declared_account(declared, &team_member_email, team_space)?,
            false,
        ),
        None => {
            let mut account = AccountConfig::named(name);
            account.token_file = Some(admin.settings.accounts_dir.join(format!("{name}.token")));
            account.api_url = admin.settings.api_url.clone();
            account.team_member_email = team_member_email;
            account.team_space = team_space;
            (account, true)
        }
    };
    let redirect_uri = admin.redirect_uri();
    let base = account.api_url.as_deref().unwrap_or(AUTHORIZE_BASE);
    let base = url::Url::parse(base).with_context(|| format!("the account's api_url {base:?}"))?;
    let attempt = pkce::Attempt::new();
    let url = oauth::authorize_url(
        &base,
        &AuthorizeParams {
            app_key: &app_key,
            redirect_uri: Some(&redirect_uri),
            state: &attempt.state,
            code_challenge: &attempt.challenge,
        },
    );
    let pending = Pending {
        state: attempt.state,
        verifier: attempt.verifier,
        account,
        new_account,
        app_key,
        app_secret,
        redirect_uri,
        started: Instant::now(),
    };
    Ok((pending, url))
}

/// The app key and secret of the account's token file, for a re-connect.
fn app_of_token_file(account: Option<&AccountConfig>) -> anyhow::Result<(String, Secret)> {
    let path = account
        .and_then(|account| account.token_file.as_ref())
        .context("the account has no token file")?;
    let file = TokenFile::read(path)?;
    Ok((file.app_key, Secret::new(file.app_secret)))
}

/// A name the config declares: re-connected into its own token file, with its own settings.
fn declared_account(
    declared: AccountConfig,
    team_member_email: &Option<String>,
    team_space: bool,
) -> anyhow::Result<AccountConfig> {
    let name = &declared.name;
    if declared.token_file.is_none() {
        bail!(
            "accounts.{name} has its credentials in the config file, not in a token file: \
             change them there (or give it a token_file)"
        );
    }
    let differs = team_member_email
        .as_ref()
        .is_some_and(|email| Some(email) != declared.team_member_email.as_ref())
        || (team_space && !declared.team_space);
    if differs {
        bail!(
            "accounts.{name} is declared in the config file, whose team settings apply; \
             change team_member_email or team_space there"
        );
    }
    Ok(declared)
}

/// GET /?command=register_dropbox_api: Dropbox's answer.
pub async fn finish(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let Some(session) = admin.signed_in(&headers) else {
        return without_session(&query);
    };
    let state = form_value(&query, "state").unwrap_or_default();
    let pending = admin
        .sessions
        .with(&session.id, |s| match &s.pending {
            Some(pending) if super::sessions::same_token(&pending.state, state) => s.pending.take(),
            _ => None,
        })
        .flatten();
    let Some(pending) = pending else {
        let why = "the answer does not belong to a Connect started in this session (its state does not match)";
        let message =
            format!("Dropbox's answer was not acted on: {why}. Start again with Connect.");
        admin.report(
            &peer,
            &session,
            CONNECT,
            None,
            Outcome::Refused(why),
            message,
        );
        return see_other("/accounts");
    };
    let name = pending.account.name.clone();
    // On a task of its own, so a browser that goes away cannot cut it off between writing the
    // new token file and putting it in place, and the audit line and message are always written.
    let completing = admin.clone();
    let result = tokio::spawn(async move { complete(&completing, pending, &query).await })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("connecting the account stopped: {e}")));
    match result {
        Ok(message) => admin.report(&peer, &session, CONNECT, Some(&name), Outcome::Ok, message),
        Err(e) => {
            let why = format!("{e:#}");
            let message = format!("{name} was not connected: {why}");
            let failed = Outcome::Failed(&why);
            admin.report(&peer, &session, CONNECT, Some(&name), failed, message);
        }
    }
    see_other("/accounts")
}

/// Trades the code, writes the token file, and has the gateway sign the account in.
async fn complete(
    admin: &Admin,
    pending: Pending,
    query: &[(String, String)],
) -> anyhow::Result<String> {
    if let Some(error) = form_value(query, "error") {
        let description = form_value(query, "error_description").unwrap_or("");
        bail!("Dropbox did not authorize it: {error} {description}");
    }
    if pending.started.elapsed() > PENDING_FOR {
        bail!(
            "Dropbox's answer came after {} minutes; start again",
            PENDING_FOR.as_secs() / 60
        );
    }
    let code = form_value(query, "code")
        .filter(|code| !code.is_empty())
        .context("Dropbox's answer carried no code")?;
    let account = &pending.account;
    let endpoints = match &account.api_url {
        Some(url) => Endpoints::all(url).context("api_url")?,
        None => Endpoints::default(),
    };
    let server = admin.control.server_config();
    let proxy = account.effective_proxy(&server).map(str::to_string);
    let trust = account.trust(&server)?;
    let issued = oauth::exchange_code(
        &endpoints,
        proxy.as_deref(),
        &trust,
        &CodeExchange {
            app_key: &pending.app_key,
            app_secret: &pending.app_secret,
            code: &Secret::new(code),
            code_verifier: &pending.verifier,
            redirect_uri: Some(&pending.redirect_uri),
        },
    )
    .await
    .context("trading Dropbox's code for a token failed")?;
    let authorized = Authorized {
        account: &account.name,
        app_key: &pending.app_key,
        app_secret: &pending.app_secret,
        endpoints: &endpoints,
        proxy: proxy.as_deref(),
        trust: &trust,
    };
    let mut file = authorization::token_file(&authorized, issued).await?;
    if pending.new_account {
        file.team_member_email = account.team_member_email.clone();
        file.team_space = account.team_space;
    }
    let path = account
        .token_file
        .as_ref()
        .context("the account has no token file")?;
    // Beside the account's file, so the move over it is a rename; not `*.token`, so never
    // taken for an account of its own.
    // Named for this attempt: another admin's Connect of the same account at the same moment
    // stages its own.
    let staged = path.with_extension(format!("token.new-{:08x}", rand::random::<u32>()));
    file.write(&staged)?;
    let before = signed_in_as(admin, &account.name);
    let status = admin
        .control
        .connect_account_staged(account.clone(), &staged)
        .await?;
    let who = status
        .email
        .or(file.email)
        .unwrap_or_else(|| "the authorizing account".to_string());
    // Re-connecting as another Dropbox account moves every user of it to another Dropbox:
    // said plainly, so a slip of the wrong browser profile is seen at once.
    let changed = match before {
        Some(before) if before != who => {
            format!(" It was signed in as {before} before: its users now see {who}'s Dropbox.")
        }
        _ => String::new(),
    };
    Ok(format!(
        "Connected {}: signed in as {who}. The token is in {} (mode 0600).{changed}",
        account.name,
        path.display()
    ))
}

/// Whom the account `name` was signed in as, if it was.
fn signed_in_as(admin: &Admin, name: &str) -> Option<String> {
    admin
        .control
        .accounts()
        .into_iter()
        .find(|account| account.name == name && account.connected)
        .and_then(|account| account.email)
}

/// Dropbox's answer arrived without the session cookie (see the module doc): move on to the
/// same URL from this site once; a second time, say what to do.
fn without_session(query: &[(String, String)]) -> Response {
    if form_value(query, "resume").is_some() {
        let body = "<h1>Sign in first</h1><p>Dropbox's answer arrived, but no admin session \
                    was found (signed out, expired, or another browser). Sign in, then press \
                    Connect again.</p><p><a href=\"/login\">Sign in</a></p>";
        return (
            StatusCode::UNAUTHORIZED,
            Html(html::bare_page("Sign in first", body)),
        )
            .into_response();
    }
    let mut again = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in query {
        again.append_pair(key, value);
    }
    again.append_pair("resume", "1");
    let target = escape(&format!("/?{}", again.finish()));
    let body = format!(
        "<h1>Finishing the connection…</h1><p><a href=\"{target}\">Continue</a> if nothing \
         happens.</p>"
    );
    let page = html::bare_page("Connecting", &body).replace(
        "<title>",
        &format!("<meta http-equiv=\"refresh\" content=\"0; url={target}\"><title>"),
    );
    Html(page).into_response()
}
