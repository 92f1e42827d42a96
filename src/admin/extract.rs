//! Who a request comes from, as handler arguments: [`SignedIn`] for a page (else the sign-in
//! page), [`SignedForm`] for a form post (else 403, unless its session's CSRF token came with
//! it). A handler that names one cannot forget the check.

use std::sync::Arc;

use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};

use super::{forbidden, form_value, html, sessions, Admin};

/// The signed-in session a request belongs to.
pub struct SignedIn {
    pub id: String,
    pub admin: String,
    pub csrf: String,
    /// The message left for this page, taken by the page extractor (None elsewhere).
    pub flash: Option<(bool, String)>,
}

impl SignedIn {
    pub fn viewer(&self) -> html::Viewer<'_> {
        html::Viewer {
            admin: &self.admin,
            csrf: &self.csrf,
        }
    }

    /// The flash message as HTML (empty when none).
    pub fn flash_html(&self) -> String {
        match &self.flash {
            Some((ok, text)) => html::flash(*ok, text),
            None => String::new(),
        }
    }
}

impl FromRequestParts<Arc<Admin>> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, admin: &Arc<Admin>) -> Result<Self, Response> {
        admin
            .session(&parts.headers, true)
            .ok_or_else(|| Redirect::to("/login").into_response())
    }
}

/// A form posted by a signed-in admin with their session's CSRF token.
pub struct SignedForm {
    pub session: SignedIn,
    pub form: Vec<(String, String)>,
}

impl FromRequest<Arc<Admin>> for SignedForm {
    type Rejection = Response;

    async fn from_request(request: Request, admin: &Arc<Admin>) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let session = SignedIn::from_request_parts(&mut parts, admin).await?;
        let request = Request::from_parts(parts, body);
        let Form(form) = Form::<Vec<(String, String)>>::from_request(request, admin)
            .await
            .map_err(IntoResponse::into_response)?;
        let sent = form_value(&form, "csrf").unwrap_or_default();
        if !sessions::same_token(&session.csrf, sent) {
            tracing::warn!(
                admin = %crate::log_safe::Untrusted(&session.admin),
                "admin form refused: missing or wrong CSRF token"
            );
            return Err(forbidden(
                "This form's security token is missing or out of date, so it was not acted \
                 on. Go back, reload the page and try again.",
            ));
        }
        Ok(SignedForm { session, form })
    }
}
