//! Abuse limits at the front door: bans after repeated failed logins, and connection caps.
//!
//! Every accepted TCP connection asks [`AddressGuard::admit`] first. A banned address, or one
//! over a cap, is refused by simply closing the socket: no banner, no message, nothing that
//! tells an attacker which limit it hit. An admitted connection holds a [`ConnectionSlot`]
//! that gives its place back when dropped, so the counts cannot leak.
//!
//! State is in memory, per process. Entries are pruned as they expire, and the tables are
//! bounded so that a flood from many addresses cannot grow them without limit.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::LimitsConfig;

/// Addresses with failure history kept at most; the oldest are forgotten beyond this.
const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// Why a connection was refused (for the server's own log, never for the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Banned,
    TooManyConnections,
    TooManyFromAddress,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Banned => "address banned after failed logins",
            Refusal::TooManyConnections => "too many connections",
            Refusal::TooManyFromAddress => "too many connections from this address",
        }
    }
}

/// The limits, shared by every connection of one listener.
pub struct AddressGuard {
    limits: LimitsConfig,
    state: Mutex<GuardState>,
}

#[derive(Default)]
struct GuardState {
    open_total: usize,
    open_by_address: HashMap<IpAddr, usize>,
    /// Times of recent failed logins, oldest first.
    failures: HashMap<IpAddr, VecDeque<Instant>>,
    banned_until: HashMap<IpAddr, Instant>,
}

impl AddressGuard {
    pub fn new(limits: LimitsConfig) -> Arc<AddressGuard> {
        Arc::new(AddressGuard {
            limits,
            state: Mutex::new(GuardState::default()),
        })
    }

    /// A slot for a new connection from `ip`, or why it is refused.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        self.admit_at(ip, Instant::now())
    }

    fn admit_at(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<ConnectionSlot, Refusal> {
        let mut state = self.lock();
        if state.is_banned(ip, now) {
            return Err(Refusal::Banned);
        }
        if state.open_total >= self.limits.max_connections {
            return Err(Refusal::TooManyConnections);
        }
        let from_address = state.open_by_address.entry(ip).or_insert(0);
        if *from_address >= self.limits.max_connections_per_address {
            return Err(Refusal::TooManyFromAddress);
        }
        *from_address += 1;
        state.open_total += 1;
        Ok(ConnectionSlot {
            guard: self.clone(),
            ip,
        })
    }

    pub fn is_banned(&self, ip: IpAddr) -> bool {
        self.lock().is_banned(ip, Instant::now())
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

    fn release(&self, ip: IpAddr) {
        let mut state = self.lock();
        state.open_total = state.open_total.saturating_sub(1);
        if let Some(count) = state.open_by_address.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                state.open_by_address.remove(&ip);
            }
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
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.guard.release(self.ip);
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
