//! File attributes and `ls -l` style longnames, built from a [`FileInfo`].
//!
//! SFTP v3 clients show what the server sends: OpenSSH's `ls -l` prints the longname as is and
//! WinSCP parses it for the type and permissions, so it follows OpenSSH's own `ls_file()`
//! layout (`%s %3u %-8s %-8s %8llu %s %s`, where the mode from `strmode()` ends in a space). Dropbox has no modes or owners, so files read as
//! `0644`, folders as `0755`, and the logged-in user owns everything.
//!
//! Folders in Dropbox carry no modification time. Rather than invent one (a 1970 date that
//! `get -p` would copy onto local folders), the attributes then leave out ACMODTIME; the
//! longname still needs a date column for parsers that count fields, and shows the epoch.

use chrono::DateTime;
use russh_sftp::protocol::{File, FileAttributes};

use crate::vfs::FileInfo;

/// Regular file, rw-r--r--.
const FILE_MODE: u32 = 0o100644;
/// Directory, rwxr-xr-x.
const FOLDER_MODE: u32 = 0o040755;

/// Half a year, as `ls` uses it to choose between a time and a year.
const SIX_MONTHS: i64 = 365 * 24 * 60 * 60 / 2;

/// The attributes of an entry: size, permissions and, when known, times (atime = mtime).
pub(super) fn file_attributes(info: &FileInfo) -> FileAttributes {
    let mtime = info.mtime.map(wire_time);
    FileAttributes {
        size: Some(info.size),
        permissions: Some(mode(info)),
        atime: mtime,
        mtime,
        ..FileAttributes::empty()
    }
}

/// A READDIR entry: name, longname and attributes.
pub(super) fn name_entry(info: &FileInfo, owner: &str, now: i64) -> File {
    File {
        filename: info.name.clone(),
        longname: longname(info, owner, now),
        attrs: file_attributes(info),
    }
}

/// `-rw-r--r--    1 alice    alice        1234 Jan  1 12:34 name`
pub(super) fn longname(info: &FileInfo, owner: &str, now: i64) -> String {
    let kind = if info.is_dir() {
        "drwxr-xr-x"
    } else {
        "-rw-r--r--"
    };
    format!(
        "{kind}  {links:>3} {owner:<8} {owner:<8} {size:>8} {date} {name}",
        links = 1,
        size = info.size,
        date = ls_date(info.mtime.unwrap_or(0), now),
        name = info.name,
    )
}

fn mode(info: &FileInfo) -> u32 {
    if info.is_dir() {
        FOLDER_MODE
    } else {
        FILE_MODE
    }
}

/// `Jan  1 12:34` within the last half year, `Jan  1  2020` otherwise (UTC).
fn ls_date(mtime: i64, now: i64) -> String {
    let Some(time) = DateTime::from_timestamp(mtime, 0) else {
        return "Jan  1  1970".to_string();
    };
    if now - SIX_MONTHS < mtime && mtime <= now {
        time.format("%b %e %H:%M").to_string()
    } else {
        time.format("%b %e  %Y").to_string()
    }
}

/// SFTP v3 times are unsigned 32-bit seconds: clamp what does not fit.
fn wire_time(seconds: i64) -> u32 {
    u32::try_from(seconds.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::FileKind;

    fn file(name: &str, size: u64, mtime: Option<i64>) -> FileInfo {
        FileInfo {
            name: name.into(),
            kind: FileKind::File,
            size,
            mtime,
        }
    }

    // 2024-03-05 14:07:00 UTC
    const T: i64 = 1_709_647_620;

    #[test]
    fn recent_file_shows_time() {
        let line = longname(&file("report.pdf", 1234, Some(T)), "alice", T + 3600);
        assert_eq!(
            line,
            "-rw-r--r--    1 alice    alice        1234 Mar  5 14:07 report.pdf"
        );
    }

    #[test]
    fn old_file_shows_year_and_long_owner_widens() {
        let line = longname(&file("a", 7, Some(T)), "averylongname", T + 365 * 24 * 3600);
        assert_eq!(
            line,
            "-rw-r--r--    1 averylongname averylongname        7 Mar  5  2024 a"
        );
    }

    #[test]
    fn folder_without_mtime() {
        let info = FileInfo {
            name: "docs".into(),
            kind: FileKind::Folder,
            size: 0,
            mtime: None,
        };
        let attrs = file_attributes(&info);
        assert_eq!(attrs.permissions, Some(0o040755));
        assert_eq!(attrs.mtime, None);
        assert!(longname(&info, "bob", T)
            .starts_with("drwxr-xr-x    1 bob      bob             0 Jan  1  1970 docs"));
    }

    #[test]
    fn file_attributes_carry_size_mode_and_times() {
        let attrs = file_attributes(&file("a", 10, Some(T)));
        assert_eq!(attrs.size, Some(10));
        assert_eq!(attrs.permissions, Some(0o100644));
        assert_eq!((attrs.atime, attrs.mtime), (Some(T as u32), Some(T as u32)));
        assert_eq!(wire_time(-5), 0);
        assert_eq!(wire_time(i64::MAX), u32::MAX);
    }
}
