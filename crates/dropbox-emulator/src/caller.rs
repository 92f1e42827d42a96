//! Who is calling and which namespace their paths are relative to.
//!
//! A call carries a bearer token (a personal account or a whole team). User routes called with a
//! team token must name a member with `Dropbox-API-Select-User` (or `-Select-Admin`).
//! `Dropbox-API-Path-Root` then picks the namespace paths are relative to: the home namespace by
//! default, the team space root, or any namespace the member may see. Namespaces map onto the
//! storage trees of [`store`](super::store): a namespace is a tree plus a top folder in it.

use std::collections::HashMap;

use axum::http::HeaderMap;
use serde_json::{json, Value};

use super::accounts::{AccountsFile, Member, PersonalAccount, Subject, Team};
use super::error::{nested, tag, ApiError, ApiResult};
use super::tokens::{TokenCheck, Tokens};

/// A namespace: a storage tree and the folder in it that is the namespace's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub id: String,
    pub tree: String,
    /// Display components of the namespace root inside the tree (empty: the tree's root).
    pub base: Vec<String>,
}

/// The account behind a user call.
#[derive(Debug, Clone)]
pub enum Identity {
    Personal(PersonalAccount),
    Member { team: Team, member: Member },
}

/// An authenticated user call, with the namespace its paths are relative to.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    pub view: Namespace,
}

/// Every namespace, by id, built from the accounts file.
pub struct Directory {
    pub accounts: AccountsFile,
    pub namespaces: HashMap<String, Namespace>,
}

impl Directory {
    pub fn new(accounts: AccountsFile) -> Directory {
        let mut namespaces = HashMap::new();
        let mut add = |id: &str, tree: &str, base: Vec<String>| {
            let namespace = Namespace {
                id: id.to_string(),
                tree: tree.to_string(),
                base,
            };
            namespaces.insert(id.to_string(), namespace);
        };
        for account in &accounts.accounts {
            add(
                &account.home_namespace_id,
                &account.home_namespace_id,
                Vec::new(),
            );
        }
        for team in &accounts.teams {
            let tree = &team.root_namespace_id;
            add(tree, tree, Vec::new());
            for folder in &team.team_folders {
                add(&folder.namespace_id, tree, vec![folder.name.clone()]);
            }
            for member in &team.members {
                add(
                    &member.home_namespace_id,
                    tree,
                    vec![member.home_folder.clone()],
                );
            }
        }
        Directory {
            accounts,
            namespaces,
        }
    }

    fn namespace(&self, id: &str) -> Namespace {
        self.namespaces[id].clone()
    }
}

impl Identity {
    pub fn home_namespace_id(&self) -> &str {
        match self {
            Identity::Personal(account) => &account.home_namespace_id,
            Identity::Member { member, .. } => &member.home_namespace_id,
        }
    }

    pub fn root_namespace_id(&self) -> &str {
        match self {
            Identity::Personal(account) => &account.home_namespace_id,
            Identity::Member { team, .. } => &team.root_namespace_id,
        }
    }

    /// The common.RootInfo value (a struct with subtypes, so it carries a `.tag`).
    pub fn root_info(&self) -> Value {
        match self {
            Identity::Personal(account) => json!({
                ".tag": "user",
                "root_namespace_id": account.home_namespace_id,
                "home_namespace_id": account.home_namespace_id,
            }),
            Identity::Member { team, member } => json!({
                ".tag": "team",
                "root_namespace_id": team.root_namespace_id,
                "home_namespace_id": member.home_namespace_id,
                "home_path": format!("/{}", member.home_folder),
            }),
        }
    }

    /// True when this identity may use namespace `id`.
    fn may_use(&self, id: &str) -> bool {
        match self {
            Identity::Personal(account) => account.home_namespace_id == id,
            Identity::Member { team, member } => {
                team.root_namespace_id == id
                    || member.home_namespace_id == id
                    || team.team_folders.iter().any(|f| f.namespace_id == id)
            }
        }
    }
}

impl Caller {
    /// The namespace `id` if this caller may use it.
    pub fn namespace(&self, directory: &Directory, id: &str) -> Option<Namespace> {
        self.identity
            .may_use(id)
            .then(|| directory.namespaces.get(id).cloned())
            .flatten()
    }
}

/// Checks the bearer token and returns its subject.
///
/// As Dropbox does: no header, or one that is not `Bearer <token>`, is bad input (400, plain
/// text); a well-formed header with a token that is unknown or expired is 401 (JSON).
pub fn authenticate(tokens: &Tokens, route: &str, headers: &HeaderMap) -> ApiResult<Subject> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(ApiError::bad_request(
            route,
            "Must provide HTTP header \"Authorization\" or URL parameter \"authorization\".",
        ));
    };
    let value = value.to_str().unwrap_or_default();
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty());
    let Some(token) = token else {
        return Err(ApiError::bad_request(
            route,
            // Dropbox quotes the value back; a token-like value is not repeated here.
            "Invalid authorization value in HTTP header \"Authorization\".  \
             Expecting \"Bearer <oauth2-access-token>\".",
        ));
    };
    match tokens.check_access(token) {
        TokenCheck::Valid(subject) => Ok(subject),
        TokenCheck::Expired => Err(ApiError::Auth("expired_access_token")),
        TokenCheck::Unknown => Err(ApiError::Auth("invalid_access_token")),
    }
}

/// Resolves a user route's caller: the account (selecting a member for team tokens) and the
/// namespace chosen by `Dropbox-API-Path-Root`.
pub fn user_caller(
    directory: &Directory,
    subject: Subject,
    route: &str,
    headers: &HeaderMap,
) -> ApiResult<Caller> {
    let accounts = &directory.accounts;
    let identity = match subject {
        Subject::Account(id) => {
            let account = accounts
                .account(&id)
                .ok_or(ApiError::Auth("invalid_access_token"))?;
            Identity::Personal(account.clone())
        }
        Subject::Team(id) => {
            let team = accounts
                .team(&id)
                .ok_or(ApiError::Auth("invalid_access_token"))?;
            let member = selected_member(team, route, headers)?;
            Identity::Member {
                team: team.clone(),
                member: member.clone(),
            }
        }
    };
    let home = directory.namespace(identity.home_namespace_id());
    let mut caller = Caller {
        identity,
        view: home,
    };
    if let Some(path_root) = headers.get("dropbox-api-path-root") {
        caller.view = path_root_namespace(directory, &caller, route, path_root.as_bytes())?;
    }
    Ok(caller)
}

fn selected_member<'a>(team: &'a Team, route: &str, headers: &HeaderMap) -> ApiResult<&'a Member> {
    let selected = headers
        .get("dropbox-api-select-user")
        .or_else(|| headers.get("dropbox-api-select-admin"));
    let Some(selected) = selected else {
        return Err(ApiError::bad_request(
            route,
            "This API function operates on a single Dropbox account, but the OAuth 2 access \
             token you provided is for an entire Dropbox Business team.  Since your API app key \
             has team member file access permissions, you can operate on a team member's \
             Dropbox by providing the \"Dropbox-API-Select-User\" HTTP header or \"select_user\" \
             URL parameter.",
        ));
    };
    let selected = selected.to_str().unwrap_or_default();
    if !selected.starts_with("dbmid:") {
        return Err(ApiError::bad_request(
            route,
            format!("Invalid select user id format: \"{selected}\""),
        ));
    }
    team.members
        .iter()
        .find(|member| member.team_member_id == selected)
        .ok_or(ApiError::Auth("invalid_select_user"))
}

fn path_root_namespace(
    directory: &Directory,
    caller: &Caller,
    route: &str,
    header: &[u8],
) -> ApiResult<Namespace> {
    let bad = |detail: String| {
        ApiError::bad_request(
            route,
            format!("Invalid value in HTTP header \"Dropbox-API-Path-Root\": {detail}"),
        )
    };
    let value: Value = serde_json::from_slice(header)
        .map_err(|err| bad(format!("could not decode input as JSON ({err})")))?;
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
    let identity = &caller.identity;
    match field(".tag").as_deref() {
        Some("home") => Ok(caller.view.clone()),
        Some("root") => {
            let root = field("root").ok_or_else(|| bad("missing field \"root\"".into()))?;
            if root != identity.root_namespace_id() {
                return Err(ApiError::PathRoot(nested(
                    "invalid_root",
                    identity.root_info(),
                )));
            }
            Ok(directory.namespace(&root))
        }
        Some("namespace_id") => {
            let id = field("namespace_id")
                .ok_or_else(|| bad("missing field \"namespace_id\"".into()))?;
            caller
                .namespace(directory, &id)
                .ok_or(ApiError::PathRoot(tag("no_permission")))
        }
        other => Err(bad(format!("unknown tag {other:?}"))),
    }
}

/// Resolves a team route's caller: the token must be a team token.
pub fn team_caller<'a>(
    directory: &'a Directory,
    subject: Subject,
    route: &str,
) -> ApiResult<&'a Team> {
    match subject {
        Subject::Team(id) => directory
            .accounts
            .team(&id)
            .ok_or(ApiError::Auth("invalid_access_token")),
        Subject::Account(_) => Err(ApiError::bad_request(
            route,
            "This API function operates on a Dropbox Business team, but the OAuth 2 access token \
             you provided is for a single user.",
        )),
    }
}
