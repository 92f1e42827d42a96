//! `dropgate hash-password`: an argon2id hash for a user's `password_hash`.

use std::io::{BufRead, Write};

use anyhow::Context;

use crate::users::password;

/// Reads the password (asked twice at a terminal, else stdin's first line) and prints its hash.
pub fn run() -> anyhow::Result<()> {
    let password = read_new_password()?;
    println!("{}", password::hash_password(&password)?);
    Ok(())
}

/// The password to hash: typed twice at a terminal (not echoed), else stdin's first line.
fn read_new_password() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        let first = ask_hidden("Password: ")?;
        if ask_hidden("Again: ")? != first {
            anyhow::bail!("the two passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        anyhow::bail!("the password is empty");
    }
    Ok(password)
}

/// Asks on stderr and reads a line from the terminal with echo off (restored afterwards).
fn ask_hidden(prompt: &str) -> anyhow::Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
    let mut silent = saved.clone();
    silent.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &silent)
        .context("cannot turn off the terminal's echo")?;
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}
