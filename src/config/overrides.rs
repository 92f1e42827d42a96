//! Environment overrides: `DROPGATE_<SECTION>__<KEY>=value` sets a key of the config file, for
//! containers and secrets managers that hand settings over as environment variables.
//!
//! The overrides are applied to the file's TOML tree before it is turned into a [`Config`], so
//! every key can be set and checked exactly as if it were in the file. The parts of a name are
//! separated by `__` and matched in lower case (`DROPGATE_UPLOAD__CONNECTIONS` is
//! `[upload] connections`; `DROPGATE_SERVER__ALGORITHMS__KEX` goes one table deeper). Entries of
//! `[[accounts]]`, `[[users]]` and `[[hooks]]` are picked by their `name`
//! (`DROPGATE_ACCOUNTS__MAIN__REFRESH_TOKEN`; upper case, `-` and `.` written as `_`), and must
//! exist in the file. A value is read as TOML if it is one (`8`, `true`, `["a", "b"]`), else as
//! a string (`0.0.0.0:2222`); a TOML value the key does not take is tried again as a string, so
//! a token that happens to look like a number still works.
//!
//! Setting a secret or its `_file` twin (`refresh_token`, `refresh_token_file`) replaces both:
//! the environment then decides where the secret comes from, whatever the file says.
//!
//! Errors say where the value came from: the variable's name for a value it set, the key for one
//! from the file. Values are never quoted (they can be secrets).

use std::collections::HashSet;

use anyhow::bail;
use toml::{Table, Value};

use super::{parse_toml, without_values, Config};

/// What a variable's name starts with.
pub const PREFIX: &str = "DROPGATE_";

/// Keys whose value is a secret that may come from a file instead (`<key>_file`).
pub const SECRET_KEYS: [&str; 4] = ["app_secret", "refresh_token", "access_token", "secret"];

/// The `DROPGATE_*__*` variables of an environment, in name order.
#[derive(Debug, Default)]
pub struct Overrides {
    list: Vec<Override>,
}

#[derive(Debug)]
struct Override {
    variable: String,
    /// The name's parts after the prefix, as written.
    parts: Vec<String>,
    raw: String,
}

/// One step into the tree: a table's key, or an entry of an array of tables.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

impl Overrides {
    /// The overrides in this process's environment. Variables with the prefix but no `__`
    /// (such as those dropgate sets for hook commands) are not overrides.
    pub fn from_env() -> anyhow::Result<Overrides> {
        let mut vars = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if !is_override(name) {
                continue;
            }
            match value.into_string() {
                Ok(value) => vars.push((name.to_string(), value)),
                Err(_) => bail!("{name}: the value is not valid UTF-8"),
            }
        }
        Ok(Overrides::from_vars(vars))
    }

    /// The overrides among `vars` (name, value).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Overrides {
        let mut list: Vec<Override> = vars
            .into_iter()
            .filter(|(name, _)| is_override(name))
            .map(|(variable, raw)| Override {
                parts: variable[PREFIX.len()..]
                    .split("__")
                    .map(str::to_string)
                    .collect(),
                variable,
                raw,
            })
            .collect();
        list.sort_by(|a, b| a.variable.cmp(&b.variable));
        Overrides { list }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The config file's text with these overrides, as a [`Config`] (not yet validated).
    pub fn parse(&self, text: &str) -> anyhow::Result<Config> {
        if self.is_empty() {
            return parse_toml(text);
        }
        // A syntax error in the file is the file's, with its line and column.
        let file: Table = match text.parse() {
            Ok(table) => table,
            Err(_) => {
                return Err(parse_toml(text)
                    .err()
                    .unwrap_or_else(|| anyhow::anyhow!("the file is not valid TOML")))
            }
        };
        let mut as_string = HashSet::new();
        loop {
            let mut tree = file.clone();
            let mut set = Vec::new();
            for (index, one) in self.list.iter().enumerate() {
                let value = match as_string.contains(&index) {
                    true => Value::String(one.raw.clone()),
                    false => toml_or_string(&one.raw),
                };
                set.push(one.apply(&mut tree, value)?);
            }
            let error = match deserialize(&tree) {
                Ok(config) => return Ok(config),
                Err(error) => error,
            };
            let at = steps_of(error.path());
            let message = error.inner().message().to_string();
            let culprit = set.iter().position(|steps| caused_by(steps, &at, &message));
            match culprit {
                // A TOML value of the wrong type: the string it also is may be what was meant.
                Some(index) if !as_string.contains(&index) && !self.list[index].is_string() => {
                    as_string.insert(index);
                }
                Some(index) => {
                    let one = &self.list[index];
                    bail!(
                        "{} (sets {}): {}",
                        one.variable,
                        dotted(&tree, &set[index]),
                        without_values(&message)
                    );
                }
                None => return Err(self.file_error(text, &tree, &at, &message)),
            }
        }
    }

    /// A deserialization error no override caused: the file's own, with its line where the
    /// file alone shows the same error.
    fn file_error(&self, text: &str, tree: &Table, at: &[Step], message: &str) -> anyhow::Error {
        let message = without_values(message);
        if let Err(alone) = parse_toml(text) {
            if alone.to_string().ends_with(&message) {
                return alone;
            }
        }
        match at.is_empty() {
            true => anyhow::anyhow!("{message}"),
            false => anyhow::anyhow!("{}: {message}", dotted(tree, at)),
        }
    }

    /// `error` (from validating the config) with the variables that set what it is about, or
    /// every override in effect when none is named, so the operator looks in the right place.
    pub fn explain(&self, error: anyhow::Error) -> anyhow::Error {
        if self.is_empty() {
            return error;
        }
        let text = format!("{error:#}");
        let mentioned: Vec<&str> = self
            .list
            .iter()
            .filter(|one| one.is_mentioned_in(&text))
            .map(|one| one.variable.as_str())
            .collect();
        match mentioned.is_empty() {
            false => error.context(format!("set by {}", mentioned.join(", "))),
            true => {
                let all: Vec<&str> = self.list.iter().map(|o| o.variable.as_str()).collect();
                error.context(format!(
                    "environment overrides in effect: {}",
                    all.join(", ")
                ))
            }
        }
    }
}

fn is_override(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.contains("__"))
}

impl Override {
    /// True if the value is read as a string anyway.
    fn is_string(&self) -> bool {
        matches!(toml_or_string(&self.raw), Value::String(_))
    }

    /// Sets the value in `tree`; returns the steps to the key it set.
    fn apply(&self, tree: &mut Table, value: Value) -> anyhow::Result<Vec<Step>> {
        let variable = &self.variable;
        if self.parts.iter().any(String::is_empty) {
            bail!("{variable}: an empty part between `__`s");
        }
        let (last, parents) = self
            .parts
            .split_last()
            .expect("split gives one part at least");
        let mut steps = Vec::new();
        let mut table = tree;
        let mut parts = parents.iter();
        while let Some(part) = parts.next() {
            let key = part.to_ascii_lowercase();
            steps.push(Step::Key(key.clone()));
            let value = table
                .entry(key.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            table = match value {
                Value::Table(inner) => inner,
                Value::Array(entries) => {
                    let Some(name) = parts.next() else {
                        bail!(
                            "{variable}: {key} is a list: name the entry, as in \
                             {PREFIX}{}__<NAME>__<KEY>",
                            key.to_ascii_uppercase()
                        );
                    };
                    let index = entry_named(entries, name)
                        .map_err(|why| anyhow::anyhow!("{variable}: {key}: {why}"))?;
                    steps.push(Step::Index(index));
                    entries[index]
                        .as_table_mut()
                        .expect("entry_named picks tables only")
                }
                _ => bail!("{variable}: {key} is not a table in the config file"),
            };
        }
        let key = last.to_ascii_lowercase();
        replace_twin(table, &key);
        table.insert(key.clone(), value);
        steps.push(Step::Key(key));
        Ok(steps)
    }

    /// True if `text` names the key this sets (`upload.connections`), or its table and the
    /// key (`accounts.main: refresh_token ...`).
    fn is_mentioned_in(&self, text: &str) -> bool {
        let lower: Vec<String> = self.parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        let (key, parents) = lower.split_last().expect("one part at least");
        let full = lower.join(".");
        text.contains(&full)
            || (!parents.is_empty()
                && text.contains(&parents.join("."))
                && text.contains(key.as_str()))
    }
}

/// Setting `x` or `x_file` of a secret drops the other one from the same table.
fn replace_twin(table: &mut Table, key: &str) {
    let twin = match key.strip_suffix("_file") {
        Some(secret) if SECRET_KEYS.contains(&secret) => secret.to_string(),
        _ if SECRET_KEYS.contains(&key) => format!("{key}_file"),
        _ => return,
    };
    table.remove(&twin);
}

/// The index of the one entry whose `name`, in environment form, is `wanted`.
fn entry_named(entries: &[Value], wanted: &str) -> Result<usize, String> {
    let names: Vec<Option<&str>> = entries
        .iter()
        .map(|entry| entry.as_table()?.get("name")?.as_str())
        .collect();
    let matching: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, name)| name.is_some_and(|n| env_form(n) == env_form(wanted)))
        .map(|(index, _)| index)
        .collect();
    match matching[..] {
        [one] => Ok(one),
        [] => {
            let known: Vec<&str> = names.iter().flatten().copied().collect();
            Err(format!(
                "no entry named {wanted} in the config file (there are: {})",
                known.join(", ")
            ))
        }
        _ => Err(format!("more than one entry is named {wanted}")),
    }
}

/// A name as a variable spells it: upper case, `-` and `.` as `_`.
fn env_form(name: &str) -> String {
    name.to_ascii_uppercase().replace(['-', '.'], "_")
}

/// The value as TOML if it is exactly one TOML value, else the text as a string.
fn toml_or_string(raw: &str) -> Value {
    match format!("value = {raw}").parse::<Table>() {
        Ok(mut table) if table.len() == 1 => table.remove("value").expect("the one key"),
        _ => Value::String(raw.to_string()),
    }
}

fn deserialize(tree: &Table) -> Result<Config, serde_path_to_error::Error<toml::de::Error>> {
    serde_path_to_error::deserialize(Value::Table(tree.clone()))
}

/// serde's path of an error, as steps.
fn steps_of(path: &serde_path_to_error::Path) -> Vec<Step> {
    path.iter()
        .filter_map(|segment| match segment {
            serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
            _ => None,
        })
        .collect()
}

/// True if the error at `at` is about the value an override set at `set`: inside it, or an
/// unknown key on the way to it (serde's path then ends at that key).
fn caused_by(set: &[Step], at: &[Step], message: &str) -> bool {
    at.starts_with(set) || (message.starts_with("unknown field") && set.starts_with(at))
}

/// `accounts.main.refresh_token` for steps into `tree` (an entry by its name where it has one).
fn dotted(tree: &Table, steps: &[Step]) -> String {
    let mut parts = Vec::new();
    let mut here = Some(tree);
    let mut list: Option<&Vec<Value>> = None;
    for step in steps {
        match step {
            Step::Key(key) => {
                parts.push(key.clone());
                let value = here.and_then(|table| table.get(key));
                list = value.and_then(Value::as_array);
                here = value.and_then(Value::as_table);
            }
            Step::Index(index) => {
                let entry = list.and_then(|entries| entries.get(*index));
                let name = entry
                    .and_then(|entry| entry.get("name"))
                    .and_then(Value::as_str);
                parts.push(name.map_or_else(|| format!("[{index}]"), str::to_string));
                here = entry.and_then(Value::as_table);
                list = None;
            }
        }
    }
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    const FILE: &str = "[server]\nlisten = \"127.0.0.1:2222\"\n\
        [[accounts]]\nname = \"main\"\naccess_token = \"from-file\"\n\
        [[accounts]]\nname = \"team-a\"\napp_key = \"k\"\napp_secret = \"s\"\nrefresh_token = \"r\"\n";

    fn overrides(vars: &[(&str, &str)]) -> Overrides {
        Overrides::from_vars(vars.iter().map(|(n, v)| (n.to_string(), v.to_string())))
    }

    fn parsed(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        overrides(vars).parse(FILE)
    }

    fn error(vars: &[(&str, &str)]) -> String {
        format!("{:#}", parsed(vars).unwrap_err())
    }

    #[test]
    fn only_prefixed_names_with_a_double_underscore_are_overrides() {
        let found = overrides(&[
            ("DROPGATE_USER", "alice"),
            ("PATH", "/bin"),
            ("DROPGATE_UPLOAD__CONNECTIONS", "8"),
            ("DROPGATE_SERVER__LISTEN", "0.0.0.0:22"),
        ]);
        let names: Vec<&str> = found.list.iter().map(|o| o.variable.as_str()).collect();
        assert_eq!(
            names,
            ["DROPGATE_SERVER__LISTEN", "DROPGATE_UPLOAD__CONNECTIONS"]
        );
        assert!(overrides(&[("DROPGATE_PATH", "/x")]).is_empty());
    }

    #[test]
    fn values_are_toml_where_they_parse_and_strings_otherwise() {
        assert_eq!(toml_or_string("8"), Value::Integer(8));
        assert_eq!(toml_or_string("true"), Value::Boolean(true));
        assert_eq!(
            toml_or_string("[\"a\", \"b\"]"),
            Value::Array(vec!["a".into(), "b".into()])
        );
        assert_eq!(toml_or_string("\"8\""), Value::String("8".into()));
        assert_eq!(toml_or_string("0.0.0.0:2222"), "0.0.0.0:2222".into());
        assert_eq!(toml_or_string("sl.AbC-123_x"), "sl.AbC-123_x".into());
        // Two values are not one: the whole text is the string.
        assert_eq!(toml_or_string("1\nother = 2"), "1\nother = 2".into());
    }

    #[test]
    fn the_environment_wins_over_the_file_and_adds_missing_tables() {
        let config = parsed(&[
            ("DROPGATE_SERVER__LISTEN", "0.0.0.0:2200"),
            ("DROPGATE_UPLOAD__CONNECTIONS", "8"),
            ("DROPGATE_SERVER__TRUSTED_PROXIES", "[\"10.0.0.0/8\"]"),
            (
                "DROPGATE_SERVER__ALGORITHMS__KEX",
                "[\"curve25519-sha256\"]",
            ),
        ])
        .unwrap();
        assert_eq!(config.server.listen, "0.0.0.0:2200".parse().unwrap());
        assert_eq!(config.upload.connections, 8);
        assert_eq!(config.server.trusted_proxies, ["10.0.0.0/8"]);
        match config.server.algorithms {
            super::super::AlgorithmsConfig::Lists(lists) => {
                assert_eq!(lists.kex.unwrap(), ["curve25519-sha256"])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn list_entries_are_picked_by_name_in_environment_form() {
        let config = parsed(&[
            ("DROPGATE_ACCOUNTS__MAIN__ACCESS_TOKEN", "from-env"),
            ("DROPGATE_ACCOUNTS__TEAM_A__APP_KEY", "other"),
        ])
        .unwrap();
        assert_eq!(config.accounts[0].access_token.as_deref(), Some("from-env"));
        assert_eq!(config.accounts[1].app_key.as_deref(), Some("other"));

        let message = error(&[("DROPGATE_ACCOUNTS__MIAN__ACCESS_TOKEN", "x")]);
        assert!(
            message
                .contains("DROPGATE_ACCOUNTS__MIAN__ACCESS_TOKEN: accounts: no entry named MIAN")
                && message.contains("main, team-a"),
            "{message}"
        );
        let message = error(&[("DROPGATE_ACCOUNTS__ACCESS_TOKEN", "x")]);
        assert!(message.contains("name the entry"), "{message}");
        let message = error(&[("DROPGATE_SERVER__LISTEN__PORT", "22")]);
        assert!(message.contains("listen is not a table"), "{message}");
    }

    #[test]
    fn a_value_that_looks_like_toml_is_taken_as_the_string_the_key_wants() {
        let config = parsed(&[("DROPGATE_ACCOUNTS__MAIN__ACCESS_TOKEN", "12345")]).unwrap();
        assert_eq!(config.accounts[0].access_token.as_deref(), Some("12345"));
    }

    #[test]
    fn a_bad_value_is_reported_by_its_variable_without_the_value() {
        let message = error(&[("DROPGATE_UPLOAD__CONNECTIONS", "many-SECRET")]);
        assert!(
            message.starts_with(
                "DROPGATE_UPLOAD__CONNECTIONS (sets upload.connections): invalid type: string"
            ),
            "{message}"
        );
        assert!(!message.contains("SECRET"), "{message}");
        let message = error(&[("DROPGATE_SERVER__LISTN", "0.0.0.0:22")]);
        assert!(
            message
                .starts_with("DROPGATE_SERVER__LISTN (sets server.listn): unknown field `listn`"),
            "{message}"
        );
        let message = error(&[("DROPGATE_SERVR__LISTEN", "0.0.0.0:22")]);
        assert!(message.starts_with("DROPGATE_SERVR__LISTEN"), "{message}");
        let message = error(&[("DROPGATE_ACCOUNTS__MAIN__TEAM_SPACE", "maybe")]);
        assert!(
            message
                .starts_with("DROPGATE_ACCOUNTS__MAIN__TEAM_SPACE (sets accounts.main.team_space)"),
            "{message}"
        );
    }

    #[test]
    fn an_error_of_the_file_is_still_the_files_with_its_line() {
        let file = "[server]\nlisten = \"127.0.0.1:2222\"\nmtime_change = \"sl.SECRET\"\n";
        let message = format!(
            "{:#}",
            overrides(&[("DROPGATE_UPLOAD__CONNECTIONS", "8")])
                .parse(file)
                .unwrap_err()
        );
        assert!(message.contains("line 3"), "{message}");
        assert!(!message.contains("DROPGATE_"), "{message}");
        assert!(!message.contains("SECRET"), "{message}");
        // The file lacks what only the environment gives: not an error of the file's.
        let without_listen = "[server]\n";
        let config = overrides(&[("DROPGATE_SERVER__LISTEN", "127.0.0.1:2201")])
            .parse(without_listen)
            .unwrap();
        assert_eq!(config.server.listen.port(), 2201);
        let message = format!(
            "{:#}",
            overrides(&[("DROPGATE_UPLOAD__CONNECTIONS", "8")])
                .parse(without_listen)
                .unwrap_err()
        );
        assert!(message.contains("missing field `listen`"), "{message}");
    }

    #[test]
    fn setting_a_secret_or_its_file_replaces_both() {
        let config = parsed(&[(
            "DROPGATE_ACCOUNTS__TEAM_A__REFRESH_TOKEN_FILE",
            "/run/secrets/refresh",
        )])
        .unwrap();
        let account = &config.accounts[1];
        assert_eq!(account.refresh_token, None);
        assert_eq!(
            account.refresh_token_file.as_deref(),
            Some(Path::new("/run/secrets/refresh"))
        );
    }

    /// The config file `text` in `dir`, loaded with `vars` as the environment.
    fn load(dir: &Path, text: &str, vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let path = dir.join("dropgate.toml");
        std::fs::write(&path, text).unwrap();
        Config::load_with(&path, &overrides(vars))
    }

    #[test]
    fn a_validation_error_names_the_variable_that_set_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let message = format!(
            "{:#}",
            load(dir.path(), FILE, &[("DROPGATE_UPLOAD__CONNECTIONS", "99")]).unwrap_err()
        );
        assert!(message.contains("dropgate.toml"), "{message}");
        assert!(
            message.contains("set by DROPGATE_UPLOAD__CONNECTIONS"),
            "{message}"
        );
        assert!(
            message.contains("upload.connections must be 1 to 16"),
            "{message}"
        );
        let message = format!(
            "{:#}",
            load(
                dir.path(),
                FILE,
                &[("DROPGATE_LIMITS__MAX_CONNECTIONS", "0")]
            )
            .unwrap_err()
        );
        assert!(
            message.contains("set by DROPGATE_LIMITS__MAX_CONNECTIONS"),
            "{message}"
        );
    }

    #[test]
    fn secrets_come_from_private_files_and_errors_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("refresh");
        std::fs::write(&secret, "r-from-file\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:2222\"\n[[accounts]]\nname = \"main\"\n\
             app_key = \"k\"\napp_secret = \"s\"\nrefresh_token_file = {:?}\n",
            secret.display().to_string()
        );
        let config = load(dir.path(), &text, &[]).unwrap();
        assert_eq!(
            config.accounts[0].refresh_token.as_deref(),
            Some("r-from-file")
        );

        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let message = format!("{:#}", load(dir.path(), &text, &[]).unwrap_err());
        assert!(
            message.contains("accounts.main.refresh_token_file")
                && message.contains("readable by others"),
            "{message}"
        );
        assert!(!message.contains("r-from-file"), "{message}");

        let both = format!("{text}refresh_token = \"r\"\n");
        let message = format!("{:#}", load(dir.path(), &both, &[]).unwrap_err());
        assert!(
            message.contains("set only one of refresh_token and refresh_token_file"),
            "{message}"
        );
    }
}
