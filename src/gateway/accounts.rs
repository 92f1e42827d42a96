//! Connecting an account (at start, at a reload, or from the admin page): its credentials, its
//! proxy, and for a Business team the member it acts as and the root its paths start from.
//!
//! Credentials come from the token file `dropgate auth` wrote (or inline ones). A team token
//! acts on a member only with `Dropbox-API-Select-User`, so `team_member_email` is resolved to
//! a team_member_id with team/members/get_info_v2 before anything else; `team_space` then asks
//! users/get_current_account, as that member, for the root namespace id that goes into
//! `Dropbox-API-Path-Root`. Every account is signed in once at start, so a revoked token or an
//! unknown member is a start-up error that names the account, not a puzzle at the first
//! upload (with the admin page on, the account is kept as not connected instead, to be
//! connected from the page: `account_map`). Only a Dropbox that cannot be reached is tolerated
//! at start for a plain account (it may be back by the time a user logs in).

use std::time::Duration;

use anyhow::{bail, Context};

use crate::backend::dropbox::api::{
    ClientOptions, Credentials, DropboxClient, DropboxError, Endpoints, RetryPolicy,
};
use crate::backend::dropbox::token_file::TokenFile;
use crate::config::{AccountConfig, ServerConfig};

/// What a signed-in account turned out to be (None fields: Dropbox could not be asked).
#[derive(Debug, Clone, Default)]
pub struct AccountFacts {
    pub email: Option<String>,
    pub account_id: Option<String>,
    /// The member a team token acts as.
    pub team_member_id: Option<String>,
    /// The namespace paths start at when `team_space` is on.
    pub team_space_root: Option<String>,
    /// The scopes Dropbox granted the token, as its token file recorded them (None when the
    /// credentials are in the config, which does not say).
    pub granted_scopes: Option<String>,
}

/// A configured account ready for use.
pub struct Connected {
    pub client: DropboxClient,
    pub facts: AccountFacts,
}

/// What to do when Dropbox cannot be reached to sign in a plain (non-team) account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// Start anyway (the gateway: Dropbox may be back before the first login).
    Tolerate,
    /// Fail (check-config: the admin wants to know).
    Fail,
}

/// Builds the account's client and signs in (see the module doc).
pub async fn connect(
    account: &AccountConfig,
    server: &ServerConfig,
    unreachable: Unreachable,
) -> anyhow::Result<Connected> {
    connect_inner(account, server, unreachable)
        .await
        .with_context(|| format!("account {:?}", account.name))
}

async fn connect_inner(
    account: &AccountConfig,
    server: &ServerConfig,
    unreachable: Unreachable,
) -> anyhow::Result<Connected> {
    let (credentials, team_token, granted_scopes) = credentials(account)?;
    let mut options = ClientOptions::new(endpoints(account)?, credentials);
    options.proxy = account.effective_proxy(server).map(str::to_string);
    options.trust = account.trust(server)?;
    options.request_timeout = Duration::from_secs(120);
    let retry = RetryPolicy {
        rate_limit_wait: server.rate_limit_wait(),
        ..RetryPolicy::default()
    };
    let client_of = |options: &ClientOptions| DropboxClient::with_retry(options.clone(), retry);
    let mut facts = AccountFacts {
        granted_scopes,
        ..AccountFacts::default()
    };

    match (&account.team_member_email, team_token) {
        (Some(email), _) => {
            let id = team_member_id(&client_of(&options)?, email).await?;
            options.select_user = Some(id.clone());
            facts.team_member_id = Some(id);
        }
        (None, true) => bail!(
            "the token file holds a team (Business) token; set team_member_email to the member \
             whose Dropbox the users see"
        ),
        (None, false) => {}
    }

    let client = client_of(&options)?;
    let needed = account.team_space || facts.team_member_id.is_some();
    let signed_in = match client.get_current_account().await {
        Ok(signed_in) => signed_in,
        Err(e) if e.is_transient() && !needed && unreachable == Unreachable::Tolerate => {
            tracing::warn!(account = %account.name, error = %e, "Dropbox cannot be reached now; continuing");
            return Ok(Connected { client, facts });
        }
        Err(e) => return Err(sign_in_error(e)),
    };
    facts.email = Some(signed_in.email);
    facts.account_id = Some(signed_in.account_id);

    if !account.team_space {
        return Ok(Connected { client, facts });
    }
    let root = signed_in.root_info.root_namespace_id;
    options.path_root = Some(root.clone());
    facts.team_space_root = Some(root);
    Ok(Connected {
        client: client_of(&options)?,
        facts,
    })
}

fn endpoints(account: &AccountConfig) -> anyhow::Result<Endpoints> {
    match &account.api_url {
        Some(url) => Endpoints::all(url).context("api_url"),
        None => Ok(Endpoints::default()),
    }
}

/// The account's credentials, whether they are a team token, and the scopes granted (both
/// known only from a token file).
fn credentials(account: &AccountConfig) -> anyhow::Result<(Credentials, bool, Option<String>)> {
    if let Some(path) = &account.token_file {
        let file = TokenFile::read(path)?;
        let credentials = Credentials::Refresh {
            app_key: account.app_key.clone().unwrap_or(file.app_key),
            app_secret: account.app_secret.clone().unwrap_or(file.app_secret),
            refresh_token: file.refresh_token,
        };
        return Ok((credentials, file.team, file.scope));
    }
    let credentials = match (
        &account.app_key,
        &account.app_secret,
        &account.refresh_token,
    ) {
        (Some(app_key), Some(app_secret), Some(refresh_token)) => Credentials::Refresh {
            app_key: app_key.clone(),
            app_secret: app_secret.clone(),
            refresh_token: refresh_token.clone(),
        },
        _ => Credentials::AccessToken(
            account
                .access_token
                .clone()
                .context("the account has no credentials")?,
        ),
    };
    Ok((credentials, false, None))
}

async fn team_member_id(team: &DropboxClient, email: &str) -> anyhow::Result<String> {
    let found = team.team_member_id_for_email(email).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot look up the team member {email:?} (team_member_email needs a team token \
             from a Business app with the members.read scope): {e}"
        )
    })?;
    found.with_context(|| {
        format!("team_member_email: the team has no member with the email {email:?}")
    })
}

fn sign_in_error(error: DropboxError) -> anyhow::Error {
    anyhow::anyhow!("cannot sign in to Dropbox: {error}")
}
