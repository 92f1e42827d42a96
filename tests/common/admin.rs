//! The admin web page from a plain HTTP client: its forms posted as a browser would, cookies
//! kept by hand (so a test sees exactly which ones the page sets), redirects not followed (so a
//! test sees each one).

use std::collections::HashMap;

use dropgate::admin::AdminServer;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

use super::{Bench, Config};

impl Bench {
    /// Starts the admin page of the bench's gateway, as `[admin]` in its config says.
    pub async fn start_admin(&self) -> AdminServer {
        let config = Config::load(&self.path("dropgate.toml")).unwrap();
        dropgate::admin::start_for(&self.gateway, &config.admin)
            .await
            .unwrap()
            .expect("the bench's config has [admin] listen")
    }
}

/// One answer, read whole.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// Where a redirect points.
    pub fn location(&self) -> String {
        self.headers
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// The value of the first hidden `csrf` field on the page.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("the page has a csrf field") + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_string()
    }

    /// The `Set-Cookie` headers, whole.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
}

/// A client of one admin page, with its own cookie jar.
pub struct AdminClient {
    pub base: String,
    http: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

impl AdminClient {
    pub fn new(base: &str) -> AdminClient {
        AdminClient::with_http(base, reqwest::Client::builder())
    }

    /// With a client built from `builder` (extra trust for TLS), never following redirects.
    pub fn with_http(base: &str, builder: reqwest::ClientBuilder) -> AdminClient {
        AdminClient {
            base: base.trim_end_matches('/').to_string(),
            http: builder
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    /// GET `path` (or a whole URL).
    pub async fn get(&mut self, path: &str) -> Answer {
        let request = self.http.get(self.url(path));
        self.send(request).await
    }

    /// POST `form` to `path`, as an HTML form is sent.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let request = self.http.post(self.url(path)).form(form);
        self.send(request).await
    }

    /// Signs in through the form; the answer to the post.
    pub async fn sign_in(&mut self, user: &str, password: &str) -> Answer {
        let form = self.get("/login").await;
        let csrf = form.csrf();
        self.post(
            "/login",
            &[("username", user), ("password", password), ("csrf", &csrf)],
        )
        .await
    }

    fn url(&self, path: &str) -> String {
        match path.starts_with("http") {
            true => path.to_string(),
            false => format!("{}{path}", self.base),
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let cookie = self
            .cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = match cookie.is_empty() {
            true => request,
            false => request.header(reqwest::header::COOKIE, cookie),
        };
        let response = request.send().await.unwrap();
        let answer = Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: String::new(),
        };
        let body = response.text().await.unwrap();
        let answer = Answer { body, ..answer };
        for set in answer.set_cookies() {
            let first = set.split(';').next().unwrap();
            let (name, value) = first.split_once('=').unwrap();
            match set.contains("Max-Age=0") {
                true => self.cookies.remove(name),
                false => self.cookies.insert(name.to_string(), value.to_string()),
            };
        }
        answer
    }
}
