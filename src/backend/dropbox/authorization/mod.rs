//! Registering an account: what one OAuth authorization needs on our side and what it becomes.
//!
//! Two front ends run the same flow, `dropgate auth` (a terminal and a one-shot redirect
//! listener) and the admin web page (a browser and the page's own redirect URL); this module
//! is what they share, so both write the same token file from the same facts: the PKCE
//! verifier and `state` of one attempt ([`pkce`]), the app key and secret in either of the
//! forms admins paste ([`app_credentials`]), and the token file that describes who authorized
//! ([`token_file`]).

pub mod pkce;

/// What every redirect URI ends with: the form CrushFTP's Dropbox integration uses, so one app
/// registration serves both (`dropgate auth`'s listener and the admin page answer it).
pub const REDIRECT_SUFFIX: &str = "?command=register_dropbox_api";

use anyhow::{bail, Context};

use super::api::oauth::IssuedTokens;
use super::api::{ClientOptions, Credentials, DropboxClient, Endpoints, Secret};
use super::token_file::TokenFile;
use crate::tls_trust::Trust;

/// Splits the `key~secret` form (CrushFTP's); a separate secret wins only if the key has none.
pub fn app_credentials(key: &str, secret: Option<String>) -> anyhow::Result<(String, Secret)> {
    match (key.split_once('~'), secret) {
        (Some(_), Some(_)) => {
            bail!("give the app secret either as KEY~SECRET or separately, not both")
        }
        (Some((key, secret)), None) if !key.is_empty() && !secret.is_empty() => {
            Ok((key.to_string(), Secret::new(secret)))
        }
        (Some(_), None) => bail!("the app key must look like KEY~SECRET, both parts non-empty"),
        (None, Some(secret)) if !key.is_empty() && !secret.is_empty() => {
            Ok((key.to_string(), Secret::new(secret)))
        }
        (None, _) => bail!(
            "the app secret is missing: give --app-secret, set DROPGATE_APP_SECRET, or use \
             --app KEY~SECRET"
        ),
    }
}

/// The registration an authorization belongs to, and how Dropbox is reached.
pub struct Authorized<'a> {
    /// The name the config knows the account by.
    pub account: &'a str,
    pub app_key: &'a str,
    pub app_secret: &'a Secret,
    pub endpoints: &'a Endpoints,
    pub proxy: Option<&'a str>,
    pub trust: &'a Trust,
}

/// The token file for `issued`: for a person, their account id and email (asked with the new
/// access token); for a team-scoped token, the team.
pub async fn token_file(
    authorized: &Authorized<'_>,
    issued: IssuedTokens,
) -> anyhow::Result<TokenFile> {
    let team = issued.account_id.is_none() && issued.team_id.is_some();
    let mut file = TokenFile {
        account: authorized.account.to_string(),
        app_key: authorized.app_key.to_string(),
        app_secret: authorized.app_secret.expose().to_string(),
        refresh_token: issued.refresh_token.expose().to_string(),
        team,
        account_id: issued.account_id.clone(),
        email: None,
        team_id: issued.team_id.clone(),
        scope: issued.scope.clone(),
        created: super::api::timestamp(chrono::Utc::now().timestamp()),
        team_member_email: None,
        team_space: false,
    };
    if !team {
        let mut options = ClientOptions::new(
            authorized.endpoints.clone(),
            Credentials::AccessToken(issued.access_token.expose().to_string()),
        );
        options.proxy = authorized.proxy.map(str::to_string);
        options.trust = authorized.trust.clone();
        let account = DropboxClient::new(options)?
            .get_current_account()
            .await
            .context("the tokens were issued, but asking Dropbox whose account it is failed")?;
        file.account_id = Some(account.account_id);
        file.email = Some(account.email);
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_credentials_in_both_forms() {
        let (key, secret) = app_credentials("k~s", None).unwrap();
        assert_eq!((key.as_str(), secret.expose()), ("k", "s"));
        let (key, secret) = app_credentials("k", Some("s".into())).unwrap();
        assert_eq!((key.as_str(), secret.expose()), ("k", "s"));
        assert!(app_credentials("k", None).is_err());
        assert!(app_credentials("k~", None).is_err());
        assert!(app_credentials("k~s", Some("t".into())).is_err());
    }
}
