//! Abuse limits at the front door: bans after repeated failed logins, and connection caps.
//!
//! Every accepted TCP connection asks [`AddressGuard::admit`] first. A banned address, or one
//! over a cap, is refused by simply closing the socket: no banner, no message, nothing that
//! tells an attacker which limit it hit. An admitted connection holds a [`ConnectionSlot`]
//! that gives its place back when dropped, so the counts cannot leak, and a [`PreLoginSlot`]
//! until it logs in: connections not logged in yet have caps of their own, lower than the
//! total, so a flood of them cannot take the places of users who have logged in (sshd's
//! MaxStartups does the same).
//!
//! "An address" is an IPv4 address, or an IPv6 network (`ipv6_prefix_len`, /64 by default):
//! one IPv6 host usually has a whole /64 to pick addresses from, so counting single IPv6
//! addresses would give it an unlimited supply of fresh ones.
//!
//! Password checks are bounded here too ([`PasswordChecks`]): argon2id is slow and large on
//! purpose, so unbounded parallel guesses would cost memory and CPU without limit.
//!
//! State is in memory, per process. Entries are pruned as they expire, and the tables are
//! bounded so that a flood from many addresses cannot grow them without limit.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ipnet::Ipv6Net;

use crate::config::LimitsConfig;
use crate::users::password::PasswordChecks;

/// Addresses with failure history kept at most; the oldest are forgotten beyond this.
const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// Why a connection was refused (for the server's own log, never for the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Banned,
    TooManyConnections,
    TooManyFromAddress,
    TooManyNotLoggedIn,
    TooManyNotLoggedInFromAddress,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Banned => "address banned after failed logins",
            Refusal::TooManyConnections => "too many connections",
            Refusal::TooManyFromAddress => "too many connections from this address",
            Refusal::TooManyNotLoggedIn => "too many connections not logged in yet",
            Refusal::TooManyNotLoggedInFromAddress => {
                "too many connections not logged in yet from this address"
            }
        }
    }
}

/// The limits, shared by every connection of one listener.
pub struct AddressGuard {
    limits: LimitsConfig,
    state: Mutex<GuardState>,
    password_checks: PasswordChecks,
}

/// Every table is keyed by [`AddressGuard::address_of`], never by the raw address.
#[derive(Default)]
struct GuardState {
    open_total: usize,
    open_by_address: HashMap<IpAddr, usize>,
    not_logged_in_total: usize,
    not_logged_in_by_address: HashMap<IpAddr, usize>,
    /// Times of recent failed logins, oldest first.
    failures: HashMap<IpAddr, VecDeque<Instant>>,
    banned_until: HashMap<IpAddr, Instant>,
}

impl AddressGuard {
    pub fn new(limits: LimitsConfig) -> Arc<AddressGuard> {
        Arc::new(AddressGuard {
            password_checks: PasswordChecks::new(limits.max_concurrent_password_checks),
            limits,
            state: Mutex::new(GuardState::default()),
        })
    }

    /// What the limits count `ip` as: an IPv4 address, or its IPv6 network. An IPv4 client
    /// on a dual-stack socket (`::ffff:a.b.c.d`) is its IPv4 address.
    fn address_of(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => Ipv6Net::new(v6, self.limits.ipv6_prefix_len)
                    .map_or(ip, |net| IpAddr::V6(net.network())),
            },
        }
    }

    /// The slots for a new connection from `ip`, or why it is refused.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<(ConnectionSlot, PreLoginSlot), Refusal> {
        self.admit_at(ip, Instant::now())
    }

    fn admit_at(
        self: &Arc<Self>,
        ip: IpAddr,
        now: Instant,
    ) -> Result<(ConnectionSlot, PreLoginSlot), Refusal> {
        let address = self.address_of(ip);
        let limits = &self.limits;
        let mut state = self.lock();
        if state.is_banned(address, now) {
            return Err(Refusal::Banned);
        }
        if state.open_total >= limits.max_connections {
            return Err(Refusal::TooManyConnections);
        }
        if count(&state.open_by_address, address) >= limits.max_connections_per_address {
            return Err(Refusal::TooManyFromAddress);
        }
        if state.not_logged_in_total >= limits.max_unauthenticated_connections {
            return Err(Refusal::TooManyNotLoggedIn);
        }
        let not_logged_in = count(&state.not_logged_in_by_address, address);
        if not_logged_in >= limits.max_unauthenticated_per_address {
            return Err(Refusal::TooManyNotLoggedInFromAddress);
        }
        *state.open_by_address.entry(address).or_insert(0) += 1;
        state.open_total += 1;
        *state.not_logged_in_by_address.entry(address).or_insert(0) += 1;
        state.not_logged_in_total += 1;
        let slot = ConnectionSlot {
            guard: self.clone(),
            address,
        };
        let pre_login = PreLoginSlot {
            guard: self.clone(),
            address,
        };
        Ok((slot, pre_login))
    }

    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let address = self.address_of(ip);
        self.lock().is_banned(address, Instant::now())
    }

    /// The bound on password checks running at once.
    pub fn password_checks(&self) -> &PasswordChecks {
        &self.password_checks
    }

    /// Counts a failed login from `ip`; true if this one got the address banned.
    pub fn record_failure(&self, ip: IpAddr) -> bool {
        self.record_failure_at(ip, Instant::now())
    }

    fn record_failure_at(&self, ip: IpAddr, now: Instant) -> bool {
        let limits = &self.limits;
        if limits.max_login_failures == 0 {
            return false;
        }
        let ip = self.address_of(ip);
        let mut state = self.lock();
        state.forget_old(now, limits.login_failure_window());
        let window_start = now.checked_sub(limits.login_failure_window());
        let recent = state.failures.entry(ip).or_default();
        while recent
            .front()
            .is_some_and(|t| window_start.is_some_and(|start| *t < start))
        {
            recent.pop_front();
        }
        recent.push_back(now);
        if recent.len() < limits.max_login_failures as usize {
            return false;
        }
        state.failures.remove(&ip);
        state.banned_until.insert(ip, now + limits.ban());
        true
    }

    fn lock(&self) -> MutexGuard<'_, GuardState> {
        // The state stays consistent even if a holder panicked: every update is one step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, address: IpAddr) {
        let mut state = self.lock();
        state.open_total = state.open_total.saturating_sub(1);
        decrement(&mut state.open_by_address, address);
    }

    fn release_pre_login(&self, address: IpAddr) {
        let mut state = self.lock();
        state.not_logged_in_total = state.not_logged_in_total.saturating_sub(1);
        decrement(&mut state.not_logged_in_by_address, address);
    }
}

fn count(counts: &HashMap<IpAddr, usize>, address: IpAddr) -> usize {
    counts.get(&address).copied().unwrap_or(0)
}

/// One less for `address`; the entry goes when it reaches 0, so the table holds only
/// addresses with connections open.
fn decrement(counts: &mut HashMap<IpAddr, usize>, address: IpAddr) {
    if let Some(count) = counts.get_mut(&address) {
        *count -= 1;
        if *count == 0 {
            counts.remove(&address);
        }
    }
}

impl GuardState {
    fn is_banned(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.banned_until.get(&ip) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.banned_until.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Drops expired bans and stale failure histories once the tables grow large.
    fn forget_old(&mut self, now: Instant, window: Duration) {
        if self.failures.len() + self.banned_until.len() < MAX_TRACKED_ADDRESSES {
            return;
        }
        self.banned_until.retain(|_, until| *until > now);
        self.failures.retain(|_, times| {
            times
                .back()
                .is_some_and(|last| now.duration_since(*last) < window)
        });
        // Still full of live entries (a wide flood): forget histories, keep the bans.
        if self.failures.len() >= MAX_TRACKED_ADDRESSES {
            self.failures.clear();
        }
    }
}

/// One admitted connection's place in the counts; given back when dropped.
pub struct ConnectionSlot {
    guard: Arc<AddressGuard>,
    address: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.guard.release(self.address);
    }
}

/// An admitted connection's place among those not logged in yet; dropped when it logs in or
/// ends, whichever comes first.
pub struct PreLoginSlot {
    guard: Arc<AddressGuard>,
    address: IpAddr,
}

impl Drop for PreLoginSlot {
    fn drop(&mut self) {
        self.guard.release_pre_login(self.address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LimitsConfig {
        LimitsConfig {
            max_login_failures: 3,
            login_failure_window_secs: 60,
            ban_secs: 120,
            max_connections: 3,
            max_connections_per_address: 2,
            ..LimitsConfig::default()
        }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));
    const C: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 3));

    #[test]
    fn failures_within_the_window_ban_until_the_ban_expires() {
        let guard = AddressGuard::new(limits());
        let t0 = Instant::now();
        assert!(!guard.record_failure_at(A, t0));
        assert!(!guard.record_failure_at(A, t0 + Duration::from_secs(1)));
        assert!(guard.admit_at(A, t0).is_ok());
        assert!(guard.record_failure_at(A, t0 + Duration::from_secs(2)));
        let during = t0 + Duration::from_secs(100);
        assert_eq!(guard.admit_at(A, during).err(), Some(Refusal::Banned));
        assert!(guard.admit_at(B, during).is_ok(), "others are not affected");
        let after = t0 + Duration::from_secs(123);
        assert!(guard.admit_at(A, after).is_ok());
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_ban() {
        let guard = AddressGuard::new(limits());
        let t0 = Instant::now();
        for minute in 0..5 {
            let at = t0 + Duration::from_secs(61 * minute);
            assert!(!guard.record_failure_at(A, at), "minute {minute}");
        }
    }

    #[test]
    fn connection_caps_hold_and_slots_are_given_back() {
        let guard = AddressGuard::new(limits());
        let a1 = guard.admit(A).unwrap();
        let _a2 = guard.admit(A).unwrap();
        assert_eq!(guard.admit(A).err(), Some(Refusal::TooManyFromAddress));
        let _b1 = guard.admit(B).unwrap();
        assert_eq!(guard.admit(C).err(), Some(Refusal::TooManyConnections));
        drop(a1);
        assert!(guard.admit(C).is_ok());
    }

    #[test]
    fn an_ipv6_network_counts_as_one_address() {
        let guard = AddressGuard::new(limits());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let _one = guard.admit(ip("2001:db8:1:2::1")).unwrap();
        let _two = guard.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            guard.admit(ip("2001:db8:1:2::3")).err(),
            Some(Refusal::TooManyFromAddress),
            "a third address of the same /64 is over the per-address cap"
        );
        let t0 = Instant::now();
        for n in 0..3 {
            guard.record_failure_at(ip(&format!("2001:db8:1:2::{n}:1")), t0);
        }
        assert!(
            guard.is_banned(ip("2001:db8:1:2:abcd::1")),
            "the ban covers the /64"
        );
        assert!(
            !guard.is_banned(ip("2001:db8:1:3::1")),
            "the next /64 is not banned"
        );

        let exact = AddressGuard::new(LimitsConfig {
            ipv6_prefix_len: 128,
            ..limits()
        });
        let _one = exact.admit(ip("2001:db8::1")).unwrap();
        let _two = exact.admit(ip("2001:db8::1")).unwrap();
        assert!(exact.admit(ip("2001:db8::2")).is_ok());
        let fresh = AddressGuard::new(limits());
        let _mapped = fresh.admit(ip("::ffff:192.0.2.1")).unwrap();
        let _plain = fresh.admit(A).unwrap();
        assert_eq!(
            fresh.admit(A).err(),
            Some(Refusal::TooManyFromAddress),
            "an IPv4-mapped address is its IPv4 address"
        );
    }

    #[test]
    fn connections_not_logged_in_have_caps_of_their_own() {
        let guard = AddressGuard::new(LimitsConfig {
            max_connections: 10,
            max_connections_per_address: 10,
            max_unauthenticated_connections: 3,
            max_unauthenticated_per_address: 2,
            ..limits()
        });
        let (_a1, a1_pre) = guard.admit(A).unwrap();
        let (_a2, _a2_pre) = guard.admit(A).unwrap();
        assert_eq!(
            guard.admit(A).err(),
            Some(Refusal::TooManyNotLoggedInFromAddress)
        );
        let (_b1, _b1_pre) = guard.admit(B).unwrap();
        assert_eq!(guard.admit(C).err(), Some(Refusal::TooManyNotLoggedIn));
        // a1 logs in: its connection stays, its place before login is free again.
        drop(a1_pre);
        let (_a3, _a3_pre) = guard.admit(A).unwrap();
        assert_eq!(guard.lock().open_total, 4);
        assert_eq!(guard.lock().not_logged_in_total, 3);
    }

    #[test]
    fn banning_can_be_turned_off() {
        let guard = AddressGuard::new(LimitsConfig {
            max_login_failures: 0,
            ..limits()
        });
        for _ in 0..10 {
            assert!(!guard.record_failure(A));
        }
        assert!(!guard.is_banned(A));
    }
}
