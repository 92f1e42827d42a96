//! Well-known credentials of the default `accounts.json`.
//!
//! The emulator writes these into a fresh storage root so that `dropgate demo` and the tests can
//! log in without any setup. They are public on purpose: they only ever unlock the emulator.

/// App key of the single demo app.
pub const APP_KEY: &str = "emu-demo-app-key";
/// App secret of the single demo app.
pub const APP_SECRET: &str = "emu-demo-app-secret";

/// Refresh token of the personal account (demo@example.com), for [`APP_KEY`].
pub const REFRESH_TOKEN: &str = "emu-refresh-personal-0000000000000000";
/// Non-expiring access token of the personal account.
pub const ACCESS_TOKEN: &str = "emu-static-personal-0000000000000000";

/// Refresh token of the team (a team-scoped token, as a Business app gets), for [`APP_KEY`].
pub const TEAM_REFRESH_TOKEN: &str = "emu-refresh-team-0000000000000000";
/// Non-expiring team access token; user routes need `Dropbox-API-Select-User` with it.
pub const TEAM_ACCESS_TOKEN: &str = "emu-static-team-0000000000000000";

/// The personal account.
pub const PERSONAL_EMAIL: &str = "demo@example.com";
pub const PERSONAL_ACCOUNT_ID: &str = "dbid:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAdemo1";
pub const PERSONAL_HOME_NAMESPACE_ID: &str = "1001";

/// The team and its shared space.
pub const TEAM_ID: &str = "dbtid:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAteam1";
pub const TEAM_NAME: &str = "Example Team";
pub const TEAM_ROOT_NAMESPACE_ID: &str = "2000";
/// The team folder in the team space (visible with `Dropbox-API-Path-Root` root).
pub const TEAM_FOLDER_NAME: &str = "Team Shared";
pub const TEAM_FOLDER_NAMESPACE_ID: &str = "2100";

/// First team member.
pub const ALICE_EMAIL: &str = "alice@team.example";
pub const ALICE_TEAM_MEMBER_ID: &str = "dbmid:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAalice";
pub const ALICE_ACCOUNT_ID: &str = "dbid:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAalice";
pub const ALICE_HOME_NAMESPACE_ID: &str = "2001";
/// Alice's home folder as seen from the team space root.
pub const ALICE_HOME_FOLDER: &str = "Alice Smith";

/// Second team member.
pub const BOB_EMAIL: &str = "bob@team.example";
pub const BOB_TEAM_MEMBER_ID: &str = "dbmid:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAbob";
pub const BOB_ACCOUNT_ID: &str = "dbid:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAbob";
pub const BOB_HOME_NAMESPACE_ID: &str = "2002";
/// Bob's home folder as seen from the team space root.
pub const BOB_HOME_FOLDER: &str = "Bob Jones";
