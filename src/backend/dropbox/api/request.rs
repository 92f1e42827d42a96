//! The one place that builds HTTP requests, for API routes and for the OAuth token endpoint.
//!
//! A [`Route`] says which host and call style it uses; [`RequestFactory::build`] turns a route
//! and its argument into a `reqwest::Request` with exactly the headers Dropbox expects:
//! RPC → JSON body; upload → `Dropbox-API-Arg` + `application/octet-stream` body; download →
//! `Dropbox-API-Arg` (+ `Range`). User routes get the team headers (Select-User, Path-Root);
//! team routes do not. The `Authorization` header is added per attempt by [`authorize`],
//! because the token can change between a first try and a retry.

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RANGE};
use reqwest::{Body, Client, Request};
use serde::Serialize;
use url::Url;

use super::arg::to_header_json;
use super::download::ByteRange;
use super::error::DropboxError;
use super::options::{join, Endpoints};
use super::secret::Secret;

const API_ARG: HeaderName = HeaderName::from_static("dropbox-api-arg");
const SELECT_USER: HeaderName = HeaderName::from_static("dropbox-api-select-user");
const PATH_ROOT: HeaderName = HeaderName::from_static("dropbox-api-path-root");

/// Which Dropbox host serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    Api,
    Content,
}

/// How arguments and results travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// JSON in, JSON out.
    Rpc,
    /// Arguments in `Dropbox-API-Arg`, bytes in, JSON out.
    Upload,
    /// Arguments in `Dropbox-API-Arg`, bytes out, JSON in `Dropbox-API-Result`.
    Download,
}

/// A Dropbox route and what the transport needs to know about it.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// `files/get_metadata`, as in the URL after `/2/`.
    pub name: &'static str,
    pub host: Host,
    pub style: Style,
    /// Team routes act on the team, not a member: no Select-User or Path-Root headers.
    pub team: bool,
    /// Safe to send again after a server error or a lost answer (it changes nothing).
    pub read_only: bool,
}

impl Route {
    pub const fn rpc(name: &'static str) -> Self {
        Self {
            name,
            host: Host::Api,
            style: Style::Rpc,
            team: false,
            read_only: false,
        }
    }

    pub const fn upload(name: &'static str) -> Self {
        Self {
            name,
            host: Host::Content,
            style: Style::Upload,
            team: false,
            read_only: false,
        }
    }

    pub const fn download(name: &'static str) -> Self {
        Self {
            name,
            host: Host::Content,
            style: Style::Download,
            team: false,
            read_only: true,
        }
    }

    pub const fn read_only(self) -> Self {
        Self {
            read_only: true,
            ..self
        }
    }

    pub const fn team(self) -> Self {
        Self { team: true, ..self }
    }
}

/// The connection pools requests go out on (see `client::http_clients`).
#[derive(Clone)]
pub struct HttpClients {
    /// JSON calls: small, may share connections (HTTP/2 where the server offers it).
    pub rpc: Client,
    /// Bytes of files: HTTP/1.1, a connection of its own for every transfer in flight.
    pub transfers: Client,
}

#[cfg(test)]
impl HttpClients {
    /// One pool for everything.
    pub fn single(client: Client) -> Self {
        Self {
            rpc: client.clone(),
            transfers: client,
        }
    }
}

/// Builds requests for one client: its endpoints and its fixed team headers.
pub struct RequestFactory {
    http: HttpClients,
    endpoints: Endpoints,
    select_user: Option<HeaderValue>,
    path_root: Option<HeaderValue>,
    rpc_timeout: Duration,
}

impl RequestFactory {
    /// Validates the team header values once, so building a request later cannot fail on them.
    pub fn new(
        http: HttpClients,
        endpoints: Endpoints,
        select_user: Option<&str>,
        path_root: Option<&str>,
        rpc_timeout: Duration,
    ) -> Result<Self, DropboxError> {
        let select_user = select_user
            .map(|id| header_value(id, "the team member id (Select-User)"))
            .transpose()?;
        let path_root = path_root
            .map(|ns| {
                let json = to_header_json(&serde_json::json!({".tag": "root", "root": ns}))
                    .map_err(|e| DropboxError::Config(format!("path root: {e}")))?;
                header_value(&json, "the root namespace id (Path-Root)")
            })
            .transpose()?;
        Ok(Self {
            http,
            endpoints,
            select_user,
            path_root,
            rpc_timeout,
        })
    }

    /// The pool for RPCs (and the token endpoint).
    pub fn http(&self) -> &Client {
        &self.http.rpc
    }

    /// The pool a route's requests go out on.
    pub fn http_for(&self, route: &Route) -> &Client {
        match route.style {
            Style::Rpc => &self.http.rpc,
            Style::Upload | Style::Download => &self.http.transfers,
        }
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    pub fn rpc_timeout(&self) -> Duration {
        self.rpc_timeout
    }

    /// A request for `route` with argument `arg`; `body` is for uploads, `range` for downloads.
    pub fn build<A: Serialize + ?Sized>(
        &self,
        route: &Route,
        arg: &A,
        body: Option<Body>,
        range: Option<ByteRange>,
    ) -> Result<Request, DropboxError> {
        let url = self.url(route);
        let mut builder = self.http_for(route).post(url);
        match route.style {
            Style::Rpc => {
                let json = serde_json::to_vec(arg).map_err(|e| encode_error(route, e))?;
                builder = builder
                    .header(CONTENT_TYPE, "application/json")
                    .body(json)
                    .timeout(self.rpc_timeout);
            }
            Style::Upload => {
                builder = builder
                    .header(API_ARG, self.api_arg(route, arg)?)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(body.unwrap_or_else(|| Body::from(Vec::new())));
            }
            Style::Download => {
                builder = builder.header(API_ARG, self.api_arg(route, arg)?);
                if let Some(range) = range {
                    builder = builder.header(RANGE, range.header_value());
                }
            }
        }
        if !route.team {
            if let Some(id) = &self.select_user {
                builder = builder.header(SELECT_USER, id.clone());
            }
            if let Some(root) = &self.path_root {
                builder = builder.header(PATH_ROOT, root.clone());
            }
        }
        builder.build().map_err(super::error::from_transport)
    }

    /// The OAuth token endpoint request that trades a refresh token for an access token.
    /// Client id and secret go by HTTP Basic, as Dropbox documents.
    pub fn token_refresh(
        &self,
        app_key: &str,
        app_secret: &Secret,
        refresh_token: &Secret,
    ) -> Result<Request, DropboxError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
        ];
        self.http
            .rpc
            .post(self.endpoints.token_url())
            .basic_auth(app_key, Some(app_secret.expose()))
            .form(&form)
            .timeout(self.rpc_timeout)
            .build()
            .map_err(super::error::from_transport)
    }

    /// The OAuth token endpoint request that trades an authorization code (with its PKCE
    /// verifier) for tokens. The app secret goes by HTTP Basic too, so a wrong secret shows up
    /// at registration rather than at the first refresh.
    pub fn token_exchange(
        &self,
        app_key: &str,
        app_secret: &Secret,
        code: &Secret,
        code_verifier: &Secret,
        redirect_uri: Option<&str>,
    ) -> Result<Request, DropboxError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.expose()),
            ("code_verifier", code_verifier.expose()),
        ];
        // Dropbox wants it exactly when the authorize URL had one.
        if let Some(redirect_uri) = redirect_uri {
            form.push(("redirect_uri", redirect_uri));
        }
        self.http
            .rpc
            .post(self.endpoints.token_url())
            .basic_auth(app_key, Some(app_secret.expose()))
            .form(&form)
            .timeout(self.rpc_timeout)
            .build()
            .map_err(super::error::from_transport)
    }

    fn url(&self, route: &Route) -> Url {
        let base = match route.host {
            Host::Api => &self.endpoints.api,
            Host::Content => &self.endpoints.content,
        };
        join(base, &format!("2/{}", route.name))
    }

    fn api_arg<A: Serialize + ?Sized>(
        &self,
        route: &Route,
        arg: &A,
    ) -> Result<HeaderValue, DropboxError> {
        let json = to_header_json(arg).map_err(|e| encode_error(route, e))?;
        HeaderValue::from_str(&json).map_err(|_| {
            DropboxError::BadInput(format!("{}: argument has control characters", route.name))
        })
    }
}

/// Sets `Authorization: Bearer <token>`, marked sensitive so it is never printed.
pub fn authorize(request: &mut Request, token: &Secret) -> Result<(), DropboxError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        DropboxError::Config("the access token has characters not allowed in a header".into())
    })?;
    value.set_sensitive(true);
    request.headers_mut().insert(AUTHORIZATION, value);
    Ok(())
}

fn header_value(text: &str, what: &str) -> Result<HeaderValue, DropboxError> {
    HeaderValue::from_str(text)
        .map_err(|_| DropboxError::Config(format!("{what} has characters not allowed in a header")))
}

fn encode_error(route: &Route, error: serde_json::Error) -> DropboxError {
    DropboxError::BadInput(format!(
        "{}: could not encode arguments: {error}",
        route.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn factory(select_user: Option<&str>, path_root: Option<&str>) -> RequestFactory {
        RequestFactory::new(
            HttpClients::single(Client::new()),
            Endpoints::all("http://127.0.0.1:9/").unwrap(),
            select_user,
            path_root,
            Duration::from_secs(5),
        )
        .unwrap()
    }

    fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
        request.headers().get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn rpc_sends_json_body_and_team_headers() {
        let f = factory(Some("dbmid:1"), Some("42"));
        let route = Route::rpc("files/get_metadata");
        let request = f.build(&route, &json!({"path": "/é"}), None, None).unwrap();
        assert_eq!(
            request.url().as_str(),
            "http://127.0.0.1:9/2/files/get_metadata"
        );
        assert_eq!(header(&request, "content-type"), Some("application/json"));
        assert_eq!(header(&request, "dropbox-api-select-user"), Some("dbmid:1"));
        assert_eq!(
            header(&request, "dropbox-api-path-root"),
            Some(r#"{".tag":"root","root":"42"}"#)
        );
        let body = request.body().unwrap().as_bytes().unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(body).unwrap(),
            json!({"path": "/é"})
        );
        assert_eq!(request.timeout(), Some(&Duration::from_secs(5)));
    }

    #[test]
    fn team_routes_get_no_member_headers_and_null_args_are_null() {
        let f = factory(Some("dbmid:1"), Some("42"));
        let route = Route::rpc("team/members/get_info_v2").team();
        let request = f.build(&route, &(), None, None).unwrap();
        assert!(header(&request, "dropbox-api-select-user").is_none());
        assert!(header(&request, "dropbox-api-path-root").is_none());
        assert_eq!(request.body().unwrap().as_bytes().unwrap(), b"null");
    }

    #[test]
    fn upload_and_download_put_arguments_in_an_ascii_header() {
        let f = factory(None, None);
        let request = f
            .build(
                &Route::upload("files/upload"),
                &json!({"path": "/日本"}),
                None,
                None,
            )
            .unwrap();
        assert_eq!(
            header(&request, "content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(
            header(&request, "dropbox-api-arg"),
            Some(r#"{"path":"/\u65e5\u672c"}"#)
        );
        assert_eq!(request.body().unwrap().as_bytes().unwrap(), b"");
        assert!(request.timeout().is_none());

        let range = ByteRange::from_offset(10);
        let request = f
            .build(
                &Route::download("files/download"),
                &json!({"path": "/a"}),
                None,
                Some(range),
            )
            .unwrap();
        assert_eq!(header(&request, "range"), Some("bytes=10-"));
        assert!(header(&request, "content-type").is_none());
        assert!(request.body().is_none());
    }

    #[test]
    fn code_exchange_is_a_form_with_basic_auth() {
        let f = factory(Some("dbmid:1"), None);
        let request = f
            .token_exchange(
                "key",
                &Secret::new("sec"),
                &Secret::new("the-code"),
                &Secret::new("verifier"),
                Some("http://127.0.0.1:53682/?command=register_dropbox_api"),
            )
            .unwrap();
        assert_eq!(request.url().as_str(), "http://127.0.0.1:9/oauth2/token");
        assert!(header(&request, "authorization")
            .unwrap()
            .starts_with("Basic "));
        assert!(header(&request, "dropbox-api-select-user").is_none());
        let body = std::str::from_utf8(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(
            body,
            "grant_type=authorization_code&code=the-code&code_verifier=verifier&\
             redirect_uri=http%3A%2F%2F127.0.0.1%3A53682%2F%3Fcommand%3Dregister_dropbox_api"
        );
    }

    #[test]
    fn authorization_is_sensitive() {
        let f = factory(None, None);
        let mut request = f.build(&Route::rpc("x/y"), &(), None, None).unwrap();
        authorize(&mut request, &Secret::new("tok")).unwrap();
        let value = request.headers().get(AUTHORIZATION).unwrap();
        assert!(value.is_sensitive());
        assert!(!format!("{request:?}").contains("tok"));
    }
}
