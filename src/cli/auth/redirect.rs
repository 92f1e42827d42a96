//! The redirect URL: its rules, and the one-shot HTTP listener that catches Dropbox's redirect.
//!
//! The admin registers the redirect URL in the Dropbox App Console; it must end with
//! `?command=register_dropbox_api` (the form CrushFTP's Dropbox integration uses, so one app
//! registration serves both). After the admin approves, Dropbox sends the browser to that URL with `code` and `state`
//! appended to its query. dropgate listens on the URL's host and port (plain HTTP: Dropbox
//! allows `http://` only for localhost, which is where this listener belongs), takes the first
//! redirect whose `state` matches, answers the browser with a short page and stops.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use url::Url;

use crate::backend::dropbox::api::Secret;

/// What every redirect URL must end with.
pub use crate::backend::dropbox::authorization::REDIRECT_SUFFIX as REQUIRED_SUFFIX;

/// A redirect URL that follows the rules.
pub fn parse_redirect_url(text: &str) -> anyhow::Result<Url> {
    let example = "http://localhost:53682/?command=register_dropbox_api";
    if !text.ends_with(REQUIRED_SUFFIX) {
        bail!(
            "the redirect URL {text:?} must end with {REQUIRED_SUFFIX:?}, e.g. {example} \
             (register exactly the same URL under \"Redirect URIs\" in the Dropbox App Console)"
        );
    }
    let url =
        Url::parse(text).with_context(|| format!("the redirect URL {text:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("the redirect URL {text:?} must be an http:// or https:// URL, e.g. {example}");
    }
    Ok(url)
}

/// Where to listen for the redirect: the URL's own host and port. An https:// URL needs TLS in
/// front of dropgate, so its address must be given explicitly (`listen`).
pub fn listen_address(url: &Url, listen: Option<&str>) -> anyhow::Result<String> {
    if let Some(listen) = listen {
        return Ok(listen.to_string());
    }
    if url.scheme() == "https" {
        bail!(
            "dropgate's redirect listener speaks plain HTTP; for an https:// redirect URL put a \
             TLS proxy in front and give --listen ADDR:PORT, or use --no-browser and paste the code"
        );
    }
    let host = match url.host_str() {
        Some("localhost") | None => "127.0.0.1",
        Some(host) => host.trim_start_matches('[').trim_end_matches(']'),
    };
    let port = url.port_or_known_default().unwrap_or(80);
    Ok(match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    })
}

/// Binds the listener now, so that a port already in use is reported before the admin opens
/// the authorize page.
pub async fn bind(address: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.with_context(|| {
        format!("cannot listen on {address} for the redirect (is the port in use?)")
    })
}

/// What the listener hands back: the code, or Dropbox's (or the admin's) refusal.
type Outcome = Result<Secret, String>;

struct Catcher {
    path: String,
    state: String,
    outcome: Mutex<Option<oneshot::Sender<Outcome>>>,
}

/// Serves `listener` until a redirect for `url`'s path with the right `state` arrives, or
/// `timeout` passes. Returns the authorization code.
pub async fn catch_code(
    listener: TcpListener,
    url: &Url,
    state: &str,
    timeout: Duration,
) -> anyhow::Result<Secret> {
    let local: SocketAddr = listener.local_addr()?;
    let (send, receive) = oneshot::channel();
    let catcher = Arc::new(Catcher {
        path: url.path().to_string(),
        state: state.to_string(),
        outcome: Mutex::new(Some(send)),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let app = axum::Router::new().fallback(redirected).with_state(catcher);
    let server = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::warn!("the redirect listener failed: {e}");
        }
    });
    tracing::info!(%local, "waiting for Dropbox's redirect");
    let outcome = tokio::time::timeout(timeout, receive).await;
    // Let the browser's page go out, then stop.
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(3), server).await;
    match outcome {
        Err(_) => bail!(
            "no redirect arrived within {} s; run dropgate auth again (or use --no-browser)",
            timeout.as_secs()
        ),
        Ok(Err(_)) => bail!("the redirect listener stopped unexpectedly"),
        Ok(Ok(Ok(code))) => Ok(code),
        Ok(Ok(Err(refusal))) => bail!("Dropbox did not authorize dropgate: {refusal}"),
    }
}

async fn redirected(
    State(catcher): State<Arc<Catcher>>,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if uri.path() != catcher.path {
        return (StatusCode::NOT_FOUND, "Not the dropgate redirect URL.").into_response();
    }
    if query.get("state") != Some(&catcher.state) {
        // Another attempt's (or someone else's) redirect: not ours to act on.
        tracing::warn!("ignored a redirect with the wrong state");
        return page(
            StatusCode::BAD_REQUEST,
            "This redirect does not belong to the running dropgate auth (wrong state). \
             Use the authorize link it printed.",
        );
    }
    let outcome = match (query.get("code"), query.get("error")) {
        (Some(code), _) if !code.is_empty() => Ok(Secret::new(code.clone())),
        (_, Some(error)) => Err(match query.get("error_description") {
            Some(description) => format!("{error}: {description}"),
            None => error.clone(),
        }),
        _ => Err("the redirect carried no code".to_string()),
    };
    let Some(send) = catcher
        .outcome
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    else {
        return page(
            StatusCode::OK,
            "dropgate already has its answer; you can close this tab.",
        );
    };
    let text = match &outcome {
        Ok(_) => "dropgate received the authorization. You can close this tab and return to the terminal.",
        Err(_) => "Dropbox did not authorize dropgate; see the terminal.",
    };
    let _ = send.send(outcome);
    page(StatusCode::OK, text)
}

fn page(status: StatusCode, text: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><title>dropgate</title></head><body><p>{text}</p></body></html>"
    );
    (status, Html(html)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suffix_is_required_and_explained() {
        let err = parse_redirect_url("http://localhost:8080/callback")
            .unwrap_err()
            .to_string();
        assert!(err.contains("?command=register_dropbox_api"), "{err}");
        assert!(err.contains("App Console"), "{err}");
        assert!(parse_redirect_url("ftp://x/?command=register_dropbox_api").is_err());
        let url =
            parse_redirect_url("http://localhost:53682/?command=register_dropbox_api").unwrap();
        assert_eq!(url.path(), "/");
    }

    #[test]
    fn listens_on_the_urls_host_and_port() {
        let url =
            parse_redirect_url("http://localhost:53682/?command=register_dropbox_api").unwrap();
        assert_eq!(listen_address(&url, None).unwrap(), "127.0.0.1:53682");
        let url = parse_redirect_url("http://[::1]:9000/x?command=register_dropbox_api").unwrap();
        assert_eq!(listen_address(&url, None).unwrap(), "[::1]:9000");
        let url =
            parse_redirect_url("https://sftp.example.com/dropgate?command=register_dropbox_api")
                .unwrap();
        assert!(listen_address(&url, None).is_err());
        assert_eq!(
            listen_address(&url, Some("127.0.0.1:8443")).unwrap(),
            "127.0.0.1:8443"
        );
    }
}
