//! `dropgate check-config`: load the config, sign in to every account the way the gateway
//! would at start, check every user, and show what each user gets.
//!
//! The point is to find a wrong token, an unknown team member or a missing key file before the
//! partners do, so every account is tried even when an earlier one failed, and the answer is a
//! short table an admin can read at a glance.

use std::fmt::Write;
use std::path::Path;

use crate::config::Config;
use crate::gateway::accounts::{self, AccountFacts, Unreachable};

/// Prints the report; fails if any account or user failed.
pub async fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let report = check_config(&config).await;
    print!("{}", report.text);
    if !report.ok {
        anyhow::bail!(
            "{}: some accounts or users failed the check",
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
            Ok(connected) => describe(&connected.facts),
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
        ]);
    }
    // Reads and parses every user's keys, as the gateway does at start.
    if let Err(e) = config.resolve_users(Path::new("")) {
        ok = false;
        rows.push(vec![format!("FAILED: {e:#}")]);
    }
    text.push('\n');
    text.push_str(&table(&["USER", "ACCOUNT", "ROOT", "PERMISSIONS"], &rows));
    CheckReport { text, ok }
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
