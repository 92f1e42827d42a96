//! How a [`super::DropboxClient`] is configured: endpoints, credentials, team headers, timeouts.
//!
//! Secrets stay out of Debug output: [`Credentials`] and [`ClientOptions`] implement it by hand.

use std::fmt;
use std::time::Duration;

use anyhow::{bail, Context};
use url::Url;

use super::secret::scrub;
use crate::tls_trust::Trust;

/// Base URLs of the three Dropbox hosts. Routes are `{api|content}/2/<route>`; the token
/// endpoint is `{oauth}/oauth2/token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub api: Url,
    pub content: Url,
    pub oauth: Url,
}

impl Default for Endpoints {
    fn default() -> Self {
        let parse = |s: &str| Url::parse(s).expect("built-in Dropbox URL is valid");
        Self {
            api: parse("https://api.dropboxapi.com"),
            content: parse("https://content.dropboxapi.com"),
            oauth: parse("https://api.dropboxapi.com"),
        }
    }
}

impl Endpoints {
    /// One base URL for all three hosts (the emulator, tests).
    pub fn all(base: &str) -> anyhow::Result<Self> {
        let url = Url::parse(base).with_context(|| format!("invalid Dropbox base URL {base:?}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("Dropbox base URL {base:?} must start with http:// or https://");
        }
        Ok(Self {
            api: url.clone(),
            content: url.clone(),
            oauth: url,
        })
    }

    /// The OAuth 2 token endpoint.
    pub fn token_url(&self) -> Url {
        join(&self.oauth, "oauth2/token")
    }
}

/// `base` + `/` + `path`, keeping any path prefix the base has (`Url::join` with an absolute
/// path would drop it).
pub(crate) fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{prefix}/{path}"));
    url
}

/// The proxy setting that means "connect directly, ignore HTTPS_PROXY".
pub const NO_PROXY: &str = "none";

/// How the client authenticates.
#[derive(Clone)]
pub enum Credentials {
    /// A fixed access token (tests, short-lived manual use).
    AccessToken(String),
    /// App key + secret + refresh token: access tokens are obtained/refreshed from
    /// `{oauth}/oauth2/token`.
    Refresh {
        app_key: String,
        app_secret: String,
        refresh_token: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::AccessToken(_) => f.write_str("AccessToken([redacted])"),
            Credentials::Refresh { app_key, .. } => f
                .debug_struct("Refresh")
                .field("app_key", app_key)
                .field("app_secret", &"[redacted]")
                .field("refresh_token", &"[redacted]")
                .finish(),
        }
    }
}

/// Everything [`super::DropboxClient::new`] needs.
#[derive(Clone)]
pub struct ClientOptions {
    pub endpoints: Endpoints,
    pub credentials: Credentials,
    /// Business: team_member_id sent as `Dropbox-API-Select-User` on every user route.
    pub select_user: Option<String>,
    /// Business team space: root namespace id sent as
    /// `Dropbox-API-Path-Root: {".tag":"root","root":...}`.
    pub path_root: Option<String>,
    /// Outbound HTTPS proxy URL; None = reqwest's default (honours HTTPS_PROXY);
    /// [`NO_PROXY`] = no proxy at all, whatever the environment says.
    pub proxy: Option<String>,
    /// The CAs Dropbox's (or the inspecting proxy's) certificate may chain to.
    pub trust: Trust,
    /// Limit for establishing a connection (TCP + TLS).
    pub connect_timeout: Duration,
    /// Total limit for an RPC call and for the headers of a download; also the idle limit
    /// while a download's body is read and while upload data waits to be acknowledged.
    pub request_timeout: Duration,
}

impl ClientOptions {
    /// Options with Dropbox's hosts given, no team headers, system proxy, and timeouts of 10 s
    /// to connect and 60 s per request.
    pub fn new(endpoints: Endpoints, credentials: Credentials) -> Self {
        Self {
            endpoints,
            credentials,
            select_user: None,
            path_root: None,
            proxy: None,
            trust: Trust::system(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("endpoints", &self.endpoints)
            .field("credentials", &self.credentials)
            .field("select_user", &self.select_user)
            .field("path_root", &self.path_root)
            .field("proxy", &self.proxy.as_deref().map(scrub))
            .field("trust", &self.trust)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_endpoints_are_dropbox() {
        let e = Endpoints::default();
        assert_eq!(
            e.token_url().as_str(),
            "https://api.dropboxapi.com/oauth2/token"
        );
        assert_eq!(
            join(&e.content, "2/files/upload").as_str(),
            "https://content.dropboxapi.com/2/files/upload"
        );
    }

    #[test]
    fn one_base_keeps_its_path_prefix() {
        let e = Endpoints::all("http://127.0.0.1:8080/dbx/").unwrap();
        assert_eq!(
            e.token_url().as_str(),
            "http://127.0.0.1:8080/dbx/oauth2/token"
        );
        assert!(Endpoints::all("ftp://x").is_err());
        assert!(Endpoints::all("not a url").is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let mut options = ClientOptions::new(
            Endpoints::default(),
            Credentials::Refresh {
                app_key: "key".into(),
                app_secret: "SECRET1".into(),
                refresh_token: "SECRET2".into(),
            },
        );
        options.proxy = Some("http://u:SECRET3@proxy:3128".into());
        let text = format!("{options:?}");
        assert!(!text.contains("SECRET"), "{text}");
        let text = format!("{:?}", Credentials::AccessToken("SECRET4".into()));
        assert!(!text.contains("SECRET"), "{text}");
    }
}
