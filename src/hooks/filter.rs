//! Which events a hook wants: by kind (`on`), by user (`users`) and by path (`paths`, globs).
//!
//! Paths are matched as the user sees them (their root is `/`), and a rename matches if either
//! its old or its new path does, so a file moved into a watched folder is seen. `*` does not
//! cross a `/` (`/in/*.csv` does not match `/in/old/a.csv`); `**` does.

use anyhow::Context;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::event::{EventKind, HookEvent};

/// A hook's filter; empty lists let everything through.
#[derive(Debug, Clone)]
pub struct Filter {
    events: Vec<EventKind>,
    users: Vec<String>,
    paths: Option<GlobSet>,
}

impl Filter {
    /// The user and path filters; an error names the glob that does not compile.
    pub fn new(users: &[String], paths: &[String]) -> anyhow::Result<Filter> {
        let paths = if paths.is_empty() {
            None
        } else {
            let mut set = GlobSetBuilder::new();
            for glob in paths {
                let glob = GlobBuilder::new(glob)
                    .literal_separator(true)
                    .build()
                    .with_context(|| format!("paths: {glob:?} is not a glob"))?;
                set.add(glob);
            }
            Some(set.build().context("paths")?)
        };
        Ok(Filter {
            events: Vec::new(),
            users: users.to_vec(),
            paths,
        })
    }

    pub fn with_events(mut self, events: &[EventKind]) -> Filter {
        self.events = events.to_vec();
        self
    }

    pub fn wants(&self, event: &HookEvent) -> bool {
        self.events.contains(&event.event) && self.user_matches(event) && self.path_matches(event)
    }

    fn user_matches(&self, event: &HookEvent) -> bool {
        self.users.is_empty()
            || event
                .user
                .as_ref()
                .is_some_and(|user| self.users.contains(user))
    }

    /// A failed login has no path: a path filter lets none through.
    fn path_matches(&self, event: &HookEvent) -> bool {
        let Some(globs) = &self.paths else {
            return true;
        };
        [&event.path, &event.target]
            .into_iter()
            .flatten()
            .any(|path| globs.is_match(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, user: &str, path: &str, target: Option<&str>) -> HookEvent {
        HookEvent {
            id: "x".into(),
            event: kind,
            time: String::new(),
            op: String::new(),
            user: Some(user.into()),
            path: Some(path.into()),
            target: target.map(str::to_string),
            bytes: None,
            dropbox_id: None,
            rev: None,
            content_hash: None,
            method: None,
            remote: String::new(),
            conn: 0,
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kinds_users_and_globs_all_must_match() {
        let filter = Filter::new(&strings(&["alice"]), &strings(&["/in/*.csv"]))
            .unwrap()
            .with_events(&[EventKind::Upload, EventKind::Rename]);
        assert!(filter.wants(&event(EventKind::Upload, "alice", "/in/a.csv", None)));
        assert!(!filter.wants(&event(EventKind::Upload, "bob", "/in/a.csv", None)));
        assert!(!filter.wants(&event(EventKind::Delete, "alice", "/in/a.csv", None)));
        assert!(!filter.wants(&event(EventKind::Upload, "alice", "/in/a.txt", None)));
        assert!(!filter.wants(&event(EventKind::Upload, "alice", "/in/old/a.csv", None)));
        assert!(filter.wants(&event(
            EventKind::Rename,
            "alice",
            "/tmp/a.part",
            Some("/in/a.csv")
        )));
    }

    #[test]
    fn empty_lists_let_everything_through() {
        let filter = Filter::new(&[], &[])
            .unwrap()
            .with_events(&[EventKind::Mkdir]);
        assert!(filter.wants(&event(EventKind::Mkdir, "anyone", "/x/y", None)));
        let deep = Filter::new(&[], &strings(&["/in/**"]))
            .unwrap()
            .with_events(&[EventKind::Mkdir]);
        assert!(deep.wants(&event(EventKind::Mkdir, "a", "/in/x/y", None)));
    }
}
