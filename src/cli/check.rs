//! `dropgate check-config`: load the config, sign in to every account the way the gateway
//! would at start, check every user, and show what each user gets.
//!
//! The point is to find a wrong token, an unknown team member or a missing key file before the
//! partners do, so every account is tried even when an earlier one failed, and the answer is a
//! short table an admin can read at a glance. A token that lacks a scope the gateway needs
//! signs in fine and fails only at the first upload or team lookup, so the scopes its token
//! file records are compared with what the account's use needs, and a missing one is a warning
//! in the table.
//!
//! It also lists the host keys' fingerprints (what partners are told to expect) and the
//! algorithm policy, so an unknown algorithm name fails here rather than at start.

use std::fmt::Write;
use std::path::Path;

use crate::config::Config;
use crate::gateway::accounts::{self, AccountFacts, Unreachable};
use crate::ssh::algorithms::Policy;
use crate::ssh::host_key;

/// Prints the report; fails if any account or user failed.
pub async fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let report = check_config(&config).await;
    print!("{}", report.text);
    if !report.ok {
        anyhow::bail!(
            "{}: some accounts, users, host keys, algorithms or hooks failed the check",
            config_path.display()
        );
    }
    Ok(())
}

/// The report, and whether everything checked out.
pub struct CheckReport {
    pub text: String,
    pub ok: bool,
}

/// Checks `config` against Dropbox (through each account's configured URLs and proxy).
pub async fn check_config(config: &Config) -> CheckReport {
    let mut ok = true;
    let mut rows = Vec::new();
    for account in &config.accounts {
        let status = match accounts::connect(account, &config.server, Unreachable::Fail).await {
            Ok(connected) => {
                let mut status = describe(&connected.facts);
                let missing = missing_scopes(&connected.facts);
                if !missing.is_empty() {
                    let _ = write!(
                        status,
                        "; WARNING: the token lacks the scope(s) {} (add them to the Dropbox \
                         app's permissions, then re-run dropgate auth)",
                        missing.join(", ")
                    );
                }
                status
            }
            Err(e) => {
                ok = false;
                // The account name is already in the first column.
                let chain: Vec<String> = e.chain().skip(1).map(ToString::to_string).collect();
                format!("FAILED: {}", chain.join(": "))
            }
        };
        rows.push(vec![account.name.clone(), status]);
    }
    let mut text = table(&["ACCOUNT", "DROPBOX"], &rows);

    let mut rows = Vec::new();
    for user in &config.users {
        rows.push(vec![
            user.name.clone(),
            user.account.clone(),
            display_root(&user.root),
            crate::config::user_permissions(user)
                .map(|p| p.to_string())
                .unwrap_or_else(|e| format!("FAILED: {e:#}")),
            allowed_from(user, config),
        ]);
    }
    // Reads and parses every user's keys, as the gateway does at start.
    if let Err(e) = config.resolve_users(Path::new("")) {
        ok = false;
        rows.push(vec![format!("FAILED: {e:#}")]);
    }
    text.push('\n');
    text.push_str(&table(
        &["USER", "ACCOUNT", "ROOT", "PERMISSIONS", "FROM"],
        &rows,
    ));
    text.push('\n');
    ok &= host_keys_and_algorithms(config, &mut text);
    if !config.hooks.is_empty() {
        ok &= hooks_table(config, &mut text);
    }
    CheckReport { text, ok }
}

/// The host keys' fingerprints, for the admin to publish to partners, and the algorithm
/// policy; false if a key file or the policy is unusable. A key not created yet is no
/// failure: `dropgate serve` creates it at first start.
fn host_keys_and_algorithms(config: &Config, text: &mut String) -> bool {
    let mut ok = true;
    let mut rows = Vec::new();
    for file in host_key::configured_files(&config.server) {
        let status = if !file.path.exists() {
            "not created yet (dropgate serve creates it at first start)".to_string()
        } else {
            match file.load() {
                Ok(key) => host_key::describe(&key),
                Err(e) => {
                    ok = false;
                    format!("FAILED: {e:#}")
                }
            }
        };
        rows.push(vec![
            file.kind.label().to_string(),
            file.path.display().to_string(),
            status,
        ]);
    }
    text.push_str(&table(&["HOST KEY", "FILE", "FINGERPRINT"], &rows));
    text.push('\n');
    match Policy::from_config(&config.server.algorithms) {
        Ok(policy) => {
            let _ = writeln!(text, "ALGORITHMS  {}", policy.name);
            for (category, names) in policy.lists() {
                let _ = writeln!(text, "  {category:<10} {names}");
            }
            if policy.allows_legacy() {
                let _ = writeln!(
                    text,
                    "WARNING: the policy allows legacy algorithms (SHA-1, CBC); connections \
                     that use them are logged"
                );
            }
        }
        Err(e) => {
            ok = false;
            let _ = writeln!(text, "ALGORITHMS  FAILED: {e}");
        }
    }
    ok
}

/// Where the user may log in from, as configured (the load already checked the entries).
fn allowed_from(user: &crate::config::UserConfig, config: &Config) -> String {
    let own = user.allowed_networks.as_ref();
    match own.or(config.server.allowed_networks.as_ref()) {
        Some(networks) => networks.join(","),
        None => "anywhere".to_string(),
    }
}

/// One row per hook, checked as the gateway would at start (secret file, command); true if
/// every hook can run.
fn hooks_table(config: &Config, text: &mut String) -> bool {
    let mut ok = true;
    let rows: Vec<Vec<String>> = config
        .hooks
        .iter()
        .map(|hook| {
            let (name, outcome) = crate::hooks::describe(hook);
            let status = outcome.unwrap_or_else(|e| {
                ok = false;
                format!("FAILED: {e}")
            });
            vec![name, status]
        })
        .collect();
    text.push('\n');
    text.push_str(&table(&["HOOK", "ACTION"], &rows));
    ok
}

fn describe(facts: &AccountFacts) -> String {
    let mut text = match (&facts.email, &facts.account_id) {
        (Some(email), Some(id)) => format!("ok: {email} ({id})"),
        _ => "ok?: Dropbox could not be reached to confirm".to_string(),
    };
    if let Some(member) = &facts.team_member_id {
        let _ = write!(text, ", team member {member}");
    }
    match &facts.team_space_root {
        Some(root) => {
            let _ = write!(text, ", team space (root namespace {root})");
        }
        None => text.push_str(", home folder"),
    }
    text
}

/// What every account needs: its own identity, and to read and write files.
const FILE_SCOPES: &[&str] = &[
    "account_info.read",
    "files.metadata.read",
    "files.content.read",
    "files.content.write",
];
/// What a team token acting as a member needs as well: finding the member, acting as them.
const TEAM_MEMBER_SCOPES: &[&str] = &["members.read", "team_data.member"];

/// The scopes the account's use needs that its token was not granted; none if the token file
/// does not record them.
fn missing_scopes(facts: &AccountFacts) -> Vec<&'static str> {
    let Some(granted) = &facts.granted_scopes else {
        return Vec::new();
    };
    let granted: Vec<&str> = granted.split_whitespace().collect();
    let team = facts.team_member_id.is_some().then_some(TEAM_MEMBER_SCOPES);
    FILE_SCOPES
        .iter()
        .chain(team.into_iter().flatten())
        .copied()
        .filter(|scope| !granted.contains(scope))
        .collect()
}

fn display_root(root: &str) -> String {
    let trimmed = root.trim_matches('/');
    format!("/{trimmed}")
}

/// Left-aligned columns, two spaces apart; a row shorter than the header just ends early.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(widths.len().saturating_sub(1)) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_scope_is_named_and_an_unrecorded_one_is_not_guessed() {
        let mut facts = AccountFacts {
            granted_scopes: Some("account_info.read files.metadata.read files.content.read".into()),
            ..AccountFacts::default()
        };
        assert_eq!(missing_scopes(&facts), ["files.content.write"]);
        facts.team_member_id = Some("dbmid:x".into());
        assert_eq!(
            missing_scopes(&facts),
            ["files.content.write", "members.read", "team_data.member"]
        );
        facts.granted_scopes = None;
        assert!(missing_scopes(&facts).is_empty());
    }

    #[test]
    fn tables_align() {
        let rows = vec![
            vec![
                "alice".to_string(),
                "main".to_string(),
                "/alice".to_string(),
            ],
            vec!["b".to_string(), "team".to_string(), "/".to_string()],
        ];
        assert_eq!(
            table(&["USER", "ACCOUNT", "ROOT"], &rows),
            "USER   ACCOUNT  ROOT\nalice  main     /alice\nb      team     /\n"
        );
    }
}
