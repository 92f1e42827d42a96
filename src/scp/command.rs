//! The exec command that starts a legacy SCP transfer, as the client's scp sends it.
//!
//! The client runs `scp -t PATH` (it uploads, we are the sink) or `scp -f PATH` (it downloads,
//! we are the source) "on the server", which is normally a shell: OpenSSH sends e.g.
//! `scp -v -r -p -t -- /path` and quotes a path with spaces the shell's way. The words are split
//! as a POSIX shell would, so a quoted path arrives as the client meant it. Anything else is not
//! SCP and is refused by the caller.

/// Which way the files go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `scp -t`: the client uploads; we receive (the "sink").
    Upload,
    /// `scp -f`: the client downloads; we send (the "source").
    Download,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Upload => "upload",
            Direction::Download => "download",
        }
    }
}

/// A parsed `scp -t`/`scp -f` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScpCommand {
    pub direction: Direction,
    /// `-r`: folders travel as D/E records.
    pub recursive: bool,
    /// `-p`: times travel as T records.
    pub preserve_times: bool,
    /// `-d`: the upload's target must be a folder (the client sends several files).
    pub target_must_be_folder: bool,
    /// The paths as the client wrote them (relative to the user's home): one for an upload,
    /// one or more for a download.
    pub paths: Vec<String>,
}

/// Why an exec command is not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not scp at all (`echo`, a shell construct, ...).
    NotScp(String),
    /// An scp command we cannot serve; the client is told why.
    Unsupported(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotScp(why) | Refused::Unsupported(why) => f.write_str(why),
        }
    }
}

/// Parses an exec command; `Err` says why it is not an SCP command we serve.
pub fn parse(command: &[u8]) -> Result<ScpCommand, Refused> {
    let not_scp = |why: &str| Refused::NotScp(why.to_string());
    let text = std::str::from_utf8(command).map_err(|_| not_scp("not UTF-8"))?;
    let words = shell_words::split(text)
        .map_err(|e| Refused::NotScp(format!("cannot split the words: {e}")))?;
    let (program, arguments) = words
        .split_first()
        .ok_or_else(|| not_scp("empty command"))?;
    if program != "scp" && !program.ends_with("/scp") {
        return Err(not_scp("not an scp command"));
    }
    parse_arguments(arguments).map_err(Refused::Unsupported)
}

fn parse_arguments(arguments: &[String]) -> Result<ScpCommand, String> {
    let mut direction = None;
    let mut command = ScpCommand {
        direction: Direction::Upload,
        recursive: false,
        preserve_times: false,
        target_must_be_folder: false,
        paths: Vec::new(),
    };
    let mut rest = arguments.iter();
    for word in rest.by_ref() {
        if word == "--" {
            break;
        }
        let Some(flags) = word.strip_prefix('-').filter(|f| !f.is_empty()) else {
            command.paths.push(word.clone());
            break;
        };
        for flag in flags.chars() {
            match flag {
                't' => set_direction(&mut direction, Direction::Upload)?,
                'f' => set_direction(&mut direction, Direction::Download)?,
                'r' => command.recursive = true,
                'p' => command.preserve_times = true,
                'd' => command.target_must_be_folder = true,
                // Verbose and quiet only change what a real scp prints on its stderr.
                'v' | 'q' => {}
                other => return Err(format!("the scp option -{other} is not supported")),
            }
        }
    }
    command.paths.extend(rest.cloned());
    command.direction = direction.ok_or("neither -t nor -f")?;
    match (command.direction, command.paths.len()) {
        (_, 0) => Err("no path".to_string()),
        (Direction::Upload, n) if n > 1 => Err(format!(
            "{n} upload targets (a path with spaces must be quoted, e.g. host:'a b.txt')"
        )),
        _ => Ok(command),
    }
}

fn set_direction(direction: &mut Option<Direction>, wanted: Direction) -> Result<(), String> {
    match direction {
        Some(already) if *already != wanted => Err("both -t and -f".to_string()),
        _ => {
            *direction = Some(wanted);
            Ok(())
        }
    }
}

/// The path inside the user's home that a client's path names: a shell would expand `~` to the
/// home, and "." or nothing is the home itself.
pub fn home_relative(path: &str) -> &str {
    match path.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssh_upload_command_with_every_flag() {
        let command = parse(b"scp -v -r -p -d -t -- /in/box").unwrap();
        assert_eq!(
            command,
            ScpCommand {
                direction: Direction::Upload,
                recursive: true,
                preserve_times: true,
                target_must_be_folder: true,
                paths: vec!["/in/box".into()],
            }
        );
    }

    #[test]
    fn quoted_paths_and_clustered_flags_split_like_a_shell() {
        let command = parse(b"scp -pf 'my file.txt' \"other one\"").unwrap();
        assert_eq!(command.direction, Direction::Download);
        assert!(command.preserve_times && !command.recursive);
        assert_eq!(command.paths, ["my file.txt", "other one"]);
    }

    #[test]
    fn a_path_that_looks_like_a_flag_after_the_double_dash() {
        let command = parse(b"scp -t -- -odd-name").unwrap();
        assert_eq!(command.paths, ["-odd-name"]);
    }

    #[test]
    fn anything_else_is_refused() {
        for refused in [
            &b"echo hi"[..],
            b"",
            b"scp",
            b"scp -t",
            b"scp -t -f x",
            b"scp -x -t x",
            b"scp -t a b",
            b"scp -t 'unterminated",
            b"sh -c 'scp -t x'",
            b"scp -t \xff",
        ] {
            assert!(
                parse(refused).is_err(),
                "{:?} was accepted",
                String::from_utf8_lossy(refused)
            );
        }
    }

    #[test]
    fn only_scp_commands_are_told_why() {
        assert!(matches!(parse(b"echo hi"), Err(Refused::NotScp(_))));
        assert!(matches!(parse(b"scp -t a b"), Err(Refused::Unsupported(_))));
    }

    #[test]
    fn the_home_is_spelt_several_ways() {
        assert_eq!(home_relative("~"), "");
        assert_eq!(home_relative("~/in"), "/in");
        assert_eq!(home_relative("~bob/in"), "~bob/in");
        assert_eq!(home_relative("."), ".");
    }
}
