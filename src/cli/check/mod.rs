//! `dropgate check-config`: a preflight, like `sshd -t`. It loads the config, signs in to every
//! account the way the gateway would at start, checks every user, the host keys, the spool
//! folder, the audit log, the addresses to listen on and the hooks, and shows what each user
//! gets.
//!
//! The point is to find a wrong token, an unknown team member, a missing key file or a folder
//! the service cannot write before the partners do, so every check runs even when an earlier
//! one failed, and the answer is a short table an admin can read at a glance: a failing cell
//! says `FAILED [n]`, and the failures follow the tables, one per line, with absolute paths. A
//! token that lacks a scope the gateway needs signs in fine and fails only at the first upload
//! or team lookup, so the scopes its token file records are compared with what the account's
//! use needs, and a missing one is a warning in the table.
//!
//! It also lists the host keys' fingerprints (what partners are told to expect) and the
//! algorithm policy, so an unknown algorithm name fails here rather than at start.

mod machine;

use std::fmt::Write;
use std::path::Path;

use crate::config::Config;
use crate::gateway::accounts::{self, AccountFacts, Unreachable};
use crate::ssh::algorithms::Policy;
use crate::ssh::host_key;

/// Prints the report; fails if anything failed. `running`: the gateway is up with this config
/// (`systemctl reload`), so its addresses being in use is expected.
pub async fn run(config_path: &Path, running: bool) -> anyhow::Result<()> {
    let config = Config::load_except_users(config_path)?;
    let report = check_config(&config, running).await;
    print!("{}", report.text);
    if !report.ok {
        anyhow::bail!(
            "{}: the check failed (see FAILED above)",
            std::path::absolute(config_path)?.display()
        );
    }
    Ok(())
}

/// The report, and whether everything checked out.
pub struct CheckReport {
    pub text: String,
    pub ok: bool,
}

/// The tables, and the failures listed under them.
#[derive(Default)]
struct Report {
    text: String,
    failures: Vec<String>,
}

impl Report {
    /// The cell for a failure, whose message goes under the tables (a long message in a cell
    /// made the whole table as wide).
    fn fail(&mut self, message: String) -> String {
        self.failures.push(message);
        format!("FAILED [{}]", self.failures.len())
    }

    fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        self.text.push_str(&table(header, rows));
    }

    fn finish(mut self) -> CheckReport {
        if !self.failures.is_empty() {
            self.text.push('\n');
        }
        for (index, failure) in self.failures.iter().enumerate() {
            let _ = writeln!(self.text, "FAILED [{}] {failure}", index + 1);
        }
        CheckReport {
            ok: self.failures.is_empty(),
            text: self.text,
        }
    }
}

/// Checks `config` against Dropbox (through each account's configured URLs and proxy) and
/// this machine.
pub async fn check_config(config: &Config, running: bool) -> CheckReport {
    let mut report = Report::default();
    accounts_table(config, &mut report).await;
    users_table(config, &mut report);
    host_keys_table(config, &mut report);
    server_table(config, running, &mut report);
    algorithms(config, &mut report);
    if !config.hooks.is_empty() {
        hooks_table(config, &mut report);
    }
    report.finish()
}

async fn accounts_table(config: &Config, report: &mut Report) {
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
                // Named like a config key; the chain's first link only names the account too.
                let chain: Vec<String> = e.chain().skip(1).map(ToString::to_string).collect();
                let why = format!("accounts.{}: {}", account.name, chain.join(": "));
                match config.admin.enabled() {
                    // The gateway starts (and reloads) without it, and the admin page connects
                    // it: a warning, or `systemctl reload` could never run until it is fixed.
                    true => format!(
                        "WARNING: not connected ({why}); connect it on the admin page's Accounts"
                    ),
                    false => report.fail(why),
                }
            }
        };
        rows.push(vec![account.name.clone(), status]);
    }
    report.table(&["ACCOUNT", "DROPBOX"], &rows);
}

/// Every user, each checked and their keys read and parsed as the gateway does at start; each
/// failing user is reported, not only the first.
fn users_table(config: &Config, report: &mut Report) {
    let mut rows = Vec::new();
    for user in &config.users {
        let status = match config.resolve_user(user) {
            Ok(_) => "ok".to_string(),
            Err(e) => report.fail(format!("{e:#}")),
        };
        rows.push(vec![
            user.name.clone(),
            user.account.clone(),
            display_root(&user.root),
            crate::config::user_permissions(user)
                .map(|p| p.to_string())
                .unwrap_or_else(|_| "?".into()),
            allowed_from(user, config),
            status,
        ]);
    }
    report.table(
        &["USER", "ACCOUNT", "ROOT", "PERMISSIONS", "FROM", "CHECK"],
        &rows,
    );
}

/// The host keys' fingerprints, for the admin to publish to partners. A key not created yet is
/// no failure when `serve` would create it at first start.
fn host_keys_table(config: &Config, report: &mut Report) {
    let mut rows = Vec::new();
    for file in host_key::configured_files(&config.server) {
        let status = if file.path.exists() {
            match file.load() {
                Ok(key) => host_key::describe(&key),
                Err(e) => report.fail(format!("{e:#}")),
            }
        } else if config.server.host_key_create {
            match machine::host_key_creatable(&file.path) {
                Ok(()) => "not created yet (dropgate serve creates it at first start)".to_string(),
                Err(e) => report.fail(format!("{e:#}")),
            }
        } else {
            report.fail(format!("{:#}", file.missing()))
        };
        rows.push(vec![
            file.kind.label().to_string(),
            file.path.display().to_string(),
            status,
        ]);
    }
    report.table(&["HOST KEY", "FILE", "FINGERPRINT"], &rows);
}

/// What the gateway needs of this machine: its spool folder, audit log and addresses.
fn server_table(config: &Config, running: bool, report: &mut Report) {
    let mut rows = Vec::new();
    let mut row = |report: &mut Report, what: &str, at: String, result: anyhow::Result<String>| {
        let status = result.unwrap_or_else(|e| report.fail(format!("{e:#}")));
        rows.push(vec![what.to_string(), at, status]);
    };
    let spool = config.upload.spool_dir().display().to_string();
    row(report, "spool", spool, machine::spool(config));
    match &config.audit.output {
        Some(output) => row(
            report,
            "audit log",
            output.clone(),
            machine::audit_log(output),
        ),
        None => row(report, "audit log", "-".into(), Ok("off".into())),
    }
    let listen = config.server.listen;
    let result = machine::bindable("server.listen", listen, running);
    row(report, "listen", listen.to_string(), result);
    if let Some(metrics) = config.metrics.listen {
        let result = machine::bindable("metrics.listen", metrics, running);
        row(report, "metrics", metrics.to_string(), result);
    }
    if let Some(admin) = config.admin.listen {
        let result = machine::bindable("admin.listen", admin, running).and_then(|bound| {
            Ok(format!(
                "{bound}, {}",
                crate::admin::check_tls(&config.admin)?
            ))
        });
        row(report, "admin page", admin.to_string(), result);
    }
    report.table(&["SERVER", "PATH OR ADDRESS", "STATUS"], &rows);
}

/// The algorithm policy, listed, for the admin to compare with what partners need.
fn algorithms(config: &Config, report: &mut Report) {
    let text = match Policy::from_config(&config.server.algorithms) {
        Ok(policy) => {
            let mut text = format!("ALGORITHMS  {}\n", policy.name);
            for (category, names) in policy.lists() {
                let _ = writeln!(text, "  {category:<10} {names}");
            }
            if policy.allows_legacy() {
                text.push_str(
                    "WARNING: the policy allows legacy algorithms (SHA-1, CBC); connections \
                     that use them are logged\n",
                );
            }
            text
        }
        Err(e) => format!("ALGORITHMS  {}\n", report.fail(format!("{e:#}"))),
    };
    report.text.push('\n');
    report.text.push_str(&text);
}

/// Where the user may log in from, as configured (the load already checked the entries).
fn allowed_from(user: &crate::config::UserConfig, config: &Config) -> String {
    let own = user.allowed_networks.as_ref();
    match own.or(config.server.allowed_networks.as_ref()) {
        Some(networks) => networks.join(","),
        None => "anywhere".to_string(),
    }
}

/// One row per hook, checked as the gateway would at start (secret file, command).
fn hooks_table(config: &Config, report: &mut Report) {
    let mut rows = Vec::new();
    for hook in &config.hooks {
        let (name, outcome) = crate::hooks::describe(hook);
        let status = outcome.unwrap_or_else(|e| report.fail(e));
        rows.push(vec![name, status]);
    }
    report.table(&["HOOK", "ACTION"], &rows);
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
