//! The accounts file: who exists in the emulator and which credentials unlock whom.
//!
//! `<root>/accounts.json` is read at start; when it is missing a default one built from
//! [`demo_credentials`](super::demo_credentials) is written, so a fresh root works at once. The
//! format is documented in the module doc of [`emulator`](super). Each personal account and each
//! team owns one storage tree (keyed by its root namespace id); team members' homes and team
//! folders are folders at the top of the team's tree with namespace ids of their own.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::demo_credentials as demo;

/// Lifetime of access tokens issued by `/oauth2/token` unless the file says otherwise.
pub const DEFAULT_ACCESS_TOKEN_TTL_SECS: u64 = 14_400;

/// The whole `accounts.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsFile {
    /// `expires_in` of access tokens issued by `/oauth2/token`.
    #[serde(default = "default_ttl")]
    pub access_token_ttl_secs: u64,
    pub apps: Vec<App>,
    #[serde(default)]
    pub accounts: Vec<PersonalAccount>,
    #[serde(default)]
    pub teams: Vec<Team>,
    /// Long-lived refresh tokens, each bound to an app and a subject.
    #[serde(default)]
    pub refresh_tokens: Vec<Grant>,
    /// Access tokens that never expire (for simple tests and curl).
    #[serde(default)]
    pub static_access_tokens: Vec<Grant>,
    /// Subject (account_id or team_id) that `/oauth2/authorize` approves as; default: the first
    /// personal account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_as: Option<String>,
}

fn default_ttl() -> u64 {
    DEFAULT_ACCESS_TOKEN_TTL_SECS
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub app_key: String,
    pub app_secret: String,
}

/// What every person has, personal or team member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Person {
    /// `dbid:...`, 40 characters as in the spec.
    pub account_id: String,
    pub email: String,
    pub given_name: String,
    pub surname: String,
    #[serde(default = "default_country")]
    pub country: String,
    #[serde(default = "default_locale")]
    pub locale: String,
}

fn default_country() -> String {
    "US".into()
}

fn default_locale() -> String {
    "en".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersonalAccount {
    #[serde(flatten)]
    pub person: Person,
    pub home_namespace_id: String,
    /// Quota reported by users/get_space_usage.
    pub allocated_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    /// `dbtid:...`
    pub team_id: String,
    pub name: String,
    /// The team space: its tree holds the team folders and every member's home folder.
    pub root_namespace_id: String,
    pub allocated_bytes: u64,
    #[serde(default)]
    pub team_folders: Vec<TeamFolder>,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamFolder {
    pub name: String,
    pub namespace_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    #[serde(flatten)]
    pub person: Person,
    /// `dbmid:...`
    pub team_member_id: String,
    pub home_namespace_id: String,
    /// Name of the member's home folder at the top of the team space.
    pub home_folder: String,
}

/// A token bound to a subject: exactly one of `account_id` (personal) or `team_id` (team token).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub token: String,
    /// The app the token was issued to (required for refresh tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
}

/// Who a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A personal account, by account_id.
    Account(String),
    /// A whole team, by team_id (member access needs `Dropbox-API-Select-User`).
    Team(String),
}

impl Grant {
    pub fn subject(&self) -> anyhow::Result<Subject> {
        match (&self.account_id, &self.team_id) {
            (Some(account), None) => Ok(Subject::Account(account.clone())),
            (None, Some(team)) => Ok(Subject::Team(team.clone())),
            _ => anyhow::bail!(
                "token grant needs exactly one of account_id or team_id: {}",
                self.token
            ),
        }
    }
}

impl AccountsFile {
    /// Reads `<root>/accounts.json`, writing the default file first when it is missing.
    pub fn load_or_create(root: &Path) -> anyhow::Result<AccountsFile> {
        let path = root.join("accounts.json");
        if !path.exists() {
            let text = serde_json::to_string_pretty(&AccountsFile::default_demo())?;
            super::disk::write_atomically(&path, text.as_bytes())?;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let file: AccountsFile =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        file.validate()?;
        Ok(file)
    }

    fn validate(&self) -> anyhow::Result<()> {
        for grant in self.refresh_tokens.iter().chain(&self.static_access_tokens) {
            match grant.subject()? {
                Subject::Account(id) if self.account(&id).is_none() => {
                    anyhow::bail!("token {} names unknown account {id}", grant.token)
                }
                Subject::Team(id) if self.team(&id).is_none() => {
                    anyhow::bail!("token {} names unknown team {id}", grant.token)
                }
                _ => {}
            }
        }
        for grant in &self.refresh_tokens {
            let app = grant.app_key.as_deref().unwrap_or_default();
            anyhow::ensure!(
                self.app(app).is_some(),
                "refresh token {} needs a known app_key",
                grant.token
            );
        }
        Ok(())
    }

    pub fn app(&self, app_key: &str) -> Option<&App> {
        self.apps.iter().find(|app| app.app_key == app_key)
    }

    pub fn account(&self, account_id: &str) -> Option<&PersonalAccount> {
        self.accounts
            .iter()
            .find(|account| account.person.account_id == account_id)
    }

    pub fn team(&self, team_id: &str) -> Option<&Team> {
        self.teams.iter().find(|team| team.team_id == team_id)
    }

    /// The subject `/oauth2/authorize` approves as.
    pub fn authorizing_subject(&self) -> Option<Subject> {
        match &self.authorize_as {
            Some(id) if self.team(id).is_some() => Some(Subject::Team(id.clone())),
            Some(id) => Some(Subject::Account(id.clone())),
            None => self
                .accounts
                .first()
                .map(|account| Subject::Account(account.person.account_id.clone())),
        }
    }

    /// The default file: one personal account, one team of two with a team folder, one app.
    pub fn default_demo() -> AccountsFile {
        let person = |account_id: &str, email: &str, given: &str, surname: &str| Person {
            account_id: account_id.into(),
            email: email.into(),
            given_name: given.into(),
            surname: surname.into(),
            country: default_country(),
            locale: default_locale(),
        };
        let grant =
            |token: &str, app: Option<&str>, account: Option<&str>, team: Option<&str>| Grant {
                token: token.into(),
                app_key: app.map(Into::into),
                account_id: account.map(Into::into),
                team_id: team.map(Into::into),
            };
        AccountsFile {
            access_token_ttl_secs: DEFAULT_ACCESS_TOKEN_TTL_SECS,
            apps: vec![App {
                app_key: demo::APP_KEY.into(),
                app_secret: demo::APP_SECRET.into(),
            }],
            accounts: vec![PersonalAccount {
                person: person(
                    demo::PERSONAL_ACCOUNT_ID,
                    demo::PERSONAL_EMAIL,
                    "Demo",
                    "User",
                ),
                home_namespace_id: demo::PERSONAL_HOME_NAMESPACE_ID.into(),
                allocated_bytes: 2 * 1024 * 1024 * 1024 * 1024,
            }],
            teams: vec![Team {
                team_id: demo::TEAM_ID.into(),
                name: demo::TEAM_NAME.into(),
                root_namespace_id: demo::TEAM_ROOT_NAMESPACE_ID.into(),
                allocated_bytes: 5 * 1024 * 1024 * 1024 * 1024,
                team_folders: vec![TeamFolder {
                    name: demo::TEAM_FOLDER_NAME.into(),
                    namespace_id: demo::TEAM_FOLDER_NAMESPACE_ID.into(),
                }],
                members: vec![
                    Member {
                        person: person(demo::ALICE_ACCOUNT_ID, demo::ALICE_EMAIL, "Alice", "Smith"),
                        team_member_id: demo::ALICE_TEAM_MEMBER_ID.into(),
                        home_namespace_id: demo::ALICE_HOME_NAMESPACE_ID.into(),
                        home_folder: demo::ALICE_HOME_FOLDER.into(),
                    },
                    Member {
                        person: person(demo::BOB_ACCOUNT_ID, demo::BOB_EMAIL, "Bob", "Jones"),
                        team_member_id: demo::BOB_TEAM_MEMBER_ID.into(),
                        home_namespace_id: demo::BOB_HOME_NAMESPACE_ID.into(),
                        home_folder: demo::BOB_HOME_FOLDER.into(),
                    },
                ],
            }],
            refresh_tokens: vec![
                grant(
                    demo::REFRESH_TOKEN,
                    Some(demo::APP_KEY),
                    Some(demo::PERSONAL_ACCOUNT_ID),
                    None,
                ),
                grant(
                    demo::TEAM_REFRESH_TOKEN,
                    Some(demo::APP_KEY),
                    None,
                    Some(demo::TEAM_ID),
                ),
            ],
            static_access_tokens: vec![
                grant(
                    demo::ACCESS_TOKEN,
                    None,
                    Some(demo::PERSONAL_ACCOUNT_ID),
                    None,
                ),
                grant(demo::TEAM_ACCESS_TOKEN, None, None, Some(demo::TEAM_ID)),
            ],
            authorize_as: None,
        }
    }
}
