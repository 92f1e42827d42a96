//! One SSH connection: who logged in, and which channel runs the SFTP subsystem or a legacy SCP
//! transfer.
//!
//! The russh handler callbacks run on the connection's own task, so nothing here may wait on
//! SFTP or SCP work: each session runs on a task of its own, and the callbacks only start it.
//! The exec request starts [`scp`] for `scp -t`/`scp -f` and is refused at once for any other
//! command; a shell request always fails.
//!
//! Login: public keys for every user (with their authorized_keys options, [`authorized_keys`]),
//! user certificates signed by a trusted CA ([`certificate`]), a password only for users with
//! a `password_hash`. A user's `allowed_networks` are checked first, against the client's
//! address (the PROXY header's, behind a balancer): from elsewhere no key is looked at and no
//! password checked (a decoy check keeps the timing), and the client sees the same refusal as
//! for a wrong key. The methods offered are the same for every user name, known or not, so
//! they reveal nothing about who exists. Failed logins count towards the address's ban: every
//! wrong password, and one per connection whose keys were all refused (a client offering
//! several keys is one attempt, not several). A banned address is disconnected at its next
//! attempt. Logins, good and bad, go to the audit log.
//!
//! What a connection opens ends with it: the handler owns its sessions' tasks, and russh
//! drops the handler when the connection ends, which aborts them; a session also ends when the
//! client closes its channel. Ending a session drops its open uploads uncommitted (spool files
//! removed, names released), even if its writer was waiting for window the client will never
//! grant. Channels per connection and sessions per user (SFTP and SCP together) are capped
//! ([`super::quotas`]); a refusal says why, to the client and in the log.
//!
//! russh runs the handler on a task of its own, so every callback enters the connection's
//! tracing span itself (see [`super`]), and each session's task enters a span of its own below
//! it (`sftp` or `scp`).
//!
//! [`authorized_keys`]: crate::users::authorized_keys

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use russh::keys::{Certificate, HashAlg, PublicKey};
use russh::server::{
    Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::certificate;
use super::guard::{AddressGuard, PreLoginSlot};
use super::quotas::UserQuotas;
use super::{ServerContext, UserFilesystems};
use crate::audit_log::AuditSession;
use crate::log_safe::Untrusted;
use crate::scp;
use crate::sftp::{self, SessionLimits};
use crate::users::User;
use crate::vfs::audited::Audited;
use crate::vfs::permissions::Permissioned;

pub struct Connection<B> {
    peer: SocketAddr,
    /// The connection's span: every callback runs in it, and `user` is recorded at login.
    span: tracing::Span,
    context: Arc<ServerContext<B>>,
    guard: Arc<AddressGuard>,
    /// This connection's place among those not logged in yet; given back at login.
    pre_login: Option<PreLoginSlot>,
    audit: AuditSession,
    /// The user's name once logged in, shared with the code that runs the connection (for the
    /// authentication timeout and the disconnect line).
    logged_in: Arc<OnceLock<String>>,
    /// Set once authentication succeeds.
    user: Option<User>,
    /// Whether this connection's refused keys have been counted as a failed login yet.
    key_failure_counted: bool,
    /// Why the last look-up refused the user (unknown, their `allowed_networks`, a key not
    /// theirs or its options, a certificate): the reason the failed login is logged with.
    refusal: Option<String>,
    quotas: Arc<UserQuotas>,
    /// Session channels opened but not yet bound to a subsystem.
    channels: HashMap<ChannelId, Channel<Msg>>,
    /// Channels running the SFTP subsystem that still owe the client an exit status.
    sftp_channels: HashSet<ChannelId>,
    /// The SFTP and SCP sessions running (each returns its channel when it ends); dropping the
    /// set, as russh does with this handler when the connection ends, aborts them.
    sftp_sessions: JoinSet<ChannelId>,
    /// SFTP and SCP sessions started so far; numbers them within the connection, from 1.
    sftp_sessions_started: u64,
    /// Ends one SFTP or SCP session, when the client closes its channel.
    session_ends: HashMap<ChannelId, CancellationToken>,
}

/// How a login was attempted, for the logs.
#[derive(Clone, Copy)]
enum Method {
    PublicKey,
    Certificate,
    Password,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::PublicKey => "publickey",
            Method::Certificate => "certificate",
            Method::Password => "password",
        }
    }
}

impl<B: UserFilesystems> Connection<B> {
    pub fn new(
        context: Arc<ServerContext<B>>,
        guard: Arc<AddressGuard>,
        quotas: Arc<UserQuotas>,
        pre_login: PreLoginSlot,
        audit: AuditSession,
        logged_in: Arc<OnceLock<String>>,
        span: tracing::Span,
    ) -> Self {
        Connection {
            peer: audit.remote,
            span,
            context,
            guard,
            pre_login: Some(pre_login),
            audit,
            logged_in,
            user: None,
            key_failure_counted: false,
            refusal: None,
            quotas,
            channels: HashMap::new(),
            sftp_channels: HashSet::new(),
            sftp_sessions: JoinSet::new(),
            sftp_sessions_started: 0,
            session_ends: HashMap::new(),
        }
    }

    /// Channels open now: unbound ones and those running an SFTP or SCP session.
    fn open_channels(&mut self) -> usize {
        while let Some(ended) = self.sftp_sessions.try_join_next() {
            if let Ok(channel) = ended {
                self.session_ends.remove(&channel);
            }
        }
        self.channels.len() + self.sftp_sessions.len()
    }

    /// The methods offered, the same whoever asks: public key, and password if any user has
    /// one. Answering per user would tell a client which names exist and which have a
    /// password; a password for a user without one fails after the same slow check.
    fn methods(&self) -> MethodSet {
        let mut methods = vec![MethodKind::PublicKey];
        if self.context.users.current().any_password() {
            methods.push(MethodKind::Password);
        }
        MethodSet::from(&methods[..])
    }

    fn reject(&self) -> Auth {
        Auth::Reject {
            proceed_with_methods: Some(self.methods()),
            partial_success: false,
        }
    }

    /// A banned address gets no further attempts: the error closes the connection.
    fn refuse_if_banned(&self) -> anyhow::Result<()> {
        if self.guard.is_banned(self.peer.ip()) {
            tracing::info!("banned address disconnected");
            anyhow::bail!("address banned after failed logins");
        }
        Ok(())
    }

    fn accept_login(&mut self, user: User, method: Method, key: Option<String>) -> Auth {
        self.span
            .record("user", tracing::field::display(Untrusted(&user.name)));
        tracing::info!(
            method = method.name(),
            key = key.as_deref().unwrap_or(""),
            "login accepted"
        );
        self.record_login(&user.name, method, key, None);
        let _ = self.logged_in.set(user.name.clone());
        self.pre_login = None;
        self.user = Some(user);
        Auth::Accept
    }

    /// Logs and counts a failed login (with the key's fingerprint, if a key was offered); an
    /// error if it got the address banned.
    fn fail_login(
        &mut self,
        name: &str,
        method: Method,
        key: Option<String>,
        reason: &str,
    ) -> anyhow::Result<Auth> {
        tracing::info!(
            user = %Untrusted(name),
            method = method.name(),
            key = key.as_deref().unwrap_or(""),
            reason = %Untrusted(reason),
            "login refused"
        );
        self.record_login(name, method, key, Some(reason));
        if self.guard.record_failure(self.peer.ip()) {
            tracing::warn!(
                ban_secs = self.context.limits.ban_secs,
                "address banned after repeated failed logins"
            );
            anyhow::bail!("address banned after failed logins");
        }
        Ok(self.reject())
    }

    /// A refused key (`fingerprint`): the first one of a connection counts as a failed login
    /// and is audited; every one is logged, so an operator can tell which keys a client tried.
    fn refuse_key(&mut self, name: &str, fingerprint: String) -> anyhow::Result<Auth> {
        let reason = self.refusal.take();
        let reason = reason.as_deref().unwrap_or(REFUSED);
        if self.key_failure_counted {
            tracing::info!(
                user = %Untrusted(name),
                key = %fingerprint,
                reason = %Untrusted(reason),
                "another key refused"
            );
            return Ok(self.reject());
        }
        self.key_failure_counted = true;
        self.fail_login(name, Method::PublicKey, Some(fingerprint), reason)
    }

    /// The configured user `name`, if they may log in from this connection's address; a
    /// refusal is logged and kept for the audit line of the failed login.
    fn user_here(&mut self, name: &str) -> Option<User> {
        // Only this look-up's refusal may reach the audit line of this attempt.
        self.refusal = None;
        let Some(user) = self.context.users.current().users.get(name).cloned() else {
            self.refusal = Some(NO_SUCH_USER.to_string());
            return None;
        };
        match user.check_address(self.peer.ip()) {
            Ok(()) => Some(user),
            Err(reason) => {
                tracing::info!(user = name, %reason, "login refused before any key or password");
                self.refusal = Some(reason);
                None
            }
        }
    }

    fn record_login(&self, name: &str, method: Method, key: Option<String>, error: Option<&str>) {
        let mut line = self.audit.event("login");
        line.user = Some(name.to_string());
        line.method = Some(method.name());
        line.key_fingerprint = key;
        line.result = Some(if error.is_none() { "ok" } else { "failed" });
        line.error = error.map(str::to_string);
        self.audit.record(&line);
        crate::metrics::login(method.name(), if error.is_none() { "ok" } else { "failed" });
    }

    /// The configured user if `key` is one of their authorized keys and its options let it
    /// log in from here now; why not is logged.
    fn user_with_key(&mut self, name: &str, key: &PublicKey) -> Option<User> {
        let user = self.user_here(name)?;
        let now = certificate::unix_now() as i64;
        let mut refusal = None;
        for entry in user
            .keys
            .iter()
            .filter(|k| k.key.key_data() == key.key_data())
        {
            match entry.check(self.peer.ip(), now) {
                Ok(()) => return Some(user),
                Err(reason) => refusal = Some(reason),
            }
        }
        self.refusal = Some(refusal.unwrap_or_else(|| NOT_AUTHORIZED.to_string()));
        None
    }

    /// The configured user if `cert` vouches for them; the reason is logged otherwise.
    fn user_with_certificate(&mut self, name: &str, cert: &Certificate) -> Option<User> {
        let user = self.user_here(name)?;
        let logins = self.context.users.current();
        let checked = certificate::check(
            cert,
            name,
            &logins.trusted_user_cas,
            self.peer.ip(),
            certificate::unix_now(),
        );
        match checked {
            Ok(()) => {
                tracing::info!(
                    user = name,
                    key_id = cert.key_id(),
                    serial = cert.serial(),
                    "certificate accepted"
                );
                Some(user)
            }
            Err(reason) => {
                tracing::info!(user = name, key_id = cert.key_id(), reason = %Untrusted(&reason), "certificate refused");
                self.refusal = Some(format!("certificate: {reason}"));
                None
            }
        }
    }

    /// What every session channel (SFTP or SCP) needs before it starts: the channel, a place in
    /// the user's session quota and the user's filesystem behind their permissions and the audit
    /// log. `None` if refused; the client has been told.
    fn open_session(
        &mut self,
        channel_id: ChannelId,
        kind: &str,
        session: &mut Session,
    ) -> anyhow::Result<Option<OpenedSession<B::Fs>>> {
        let channel = self.channels.remove(&channel_id);
        let (Some(user), Some(channel)) = (self.user.clone(), channel) else {
            session.channel_failure(channel_id)?;
            return Ok(None);
        };
        let quota = self.quotas.for_user(&user.name);
        let slot = match quota.start_session() {
            Ok(slot) => slot,
            Err(reason) => {
                tracing::warn!(%reason, "{kind} session refused");
                refuse_with_reason(channel_id, &reason, session)?;
                return Ok(None);
            }
        };
        let fs = match self.context.filesystems.filesystem_for(&user) {
            Ok(fs) => fs,
            Err(e) => {
                self.refuse_without_filesystem(&user, kind, &e);
                // Accepted, then ended with the reason: OpenSSH's ssh exits at a failed
                // subsystem request before it prints what the server wrote on stderr.
                fail_command(channel_id, &format!("dropgate: {e}"), session)?;
                return Ok(None);
            }
        };
        session.channel_success(channel_id)?;
        self.sftp_sessions_started += 1;
        let fs = Audited::new(
            Permissioned::new(fs, user.permissions),
            self.audit
                .for_user(&user.name)
                .in_dropbox_root(&user.dropbox_root),
        );
        let end = CancellationToken::new();
        self.session_ends.insert(channel_id, end.clone());
        Ok(Some(OpenedSession {
            user,
            channel,
            slot,
            handles: quota.handles,
            fs,
            number: self.sftp_sessions_started,
            end,
        }))
    }

    /// Logs and audits a session refused because the user's filesystem cannot be had (their
    /// Dropbox account is not connected): the whole reason, which the client is not told.
    fn refuse_without_filesystem(&self, user: &User, kind: &str, error: &anyhow::Error) {
        let why = format!("{error:#}");
        tracing::warn!(account = %user.account, error = %why, "{kind} session refused");
        let audit = self.audit.for_user(&user.name);
        let mut line = audit.event("session");
        line.result = Some("refused");
        line.error = Some(why);
        audit.record(&line);
    }

    fn start_sftp(&mut self, channel_id: ChannelId, session: &mut Session) -> anyhow::Result<()> {
        let Some(opened) = self.open_session(channel_id, "sftp", session)? else {
            return Ok(());
        };
        self.sftp_channels.insert(channel_id);
        let OpenedSession {
            user,
            channel,
            slot,
            handles,
            fs,
            number,
            end,
        } = opened;
        let span = tracing::info_span!(parent: &self.span, "sftp", session = number);
        let limits = SessionLimits {
            user: user.name.clone(),
            max_handles: self.context.limits.max_handles_per_session,
            user_handles: Some(handles),
            ..SessionLimits::default()
        };
        let session = async move {
            // The user's place is given back however the session ends.
            let _slot = slot;
            tracing::info!(permissions = %user.permissions, "sftp session started");
            tokio::select! {
                result = sftp::serve(channel.into_stream(), fs, limits) => {
                    if let Err(e) = result {
                        tracing::info!(error = %Untrusted(&e), "sftp session ended with an error");
                    }
                }
                () = end.cancelled() => {
                    tracing::info!("sftp session ended: the client closed its channel");
                }
            }
            // Dropping the channel stream closes the channel.
            channel_id
        };
        self.sftp_sessions.spawn(session.instrument(span));
        Ok(())
    }

    /// A legacy SCP transfer on an exec channel; it sends its own exit status when done.
    fn start_scp(
        &mut self,
        channel_id: ChannelId,
        command: scp::ScpCommand,
        session: &mut Session,
    ) -> anyhow::Result<()> {
        let Some(opened) = self.open_session(channel_id, "scp", session)? else {
            return Ok(());
        };
        let OpenedSession {
            user,
            channel,
            slot,
            fs,
            number,
            end,
            ..
        } = opened;
        let span = tracing::info_span!(parent: &self.span, "scp", session = number);
        let session = async move {
            let _slot = slot;
            tracing::info!(
                mode = command.direction.name(),
                path = %Untrusted(command.paths.join(" ")),
                recursive = command.recursive,
                preserve_times = command.preserve_times,
                permissions = %user.permissions,
                "scp started"
            );
            tokio::select! {
                () = scp::serve(channel, fs, command) => {}
                () = end.cancelled() => {
                    tracing::info!("scp ended: the client closed its channel");
                }
            }
            channel_id
        };
        self.sftp_sessions.spawn(session.instrument(span));
        Ok(())
    }
}

/// A session channel accepted by [`Connection::open_session`].
struct OpenedSession<Fs> {
    user: User,
    channel: Channel<Msg>,
    /// The user's place in their session quota, held for as long as the session runs.
    slot: tokio::sync::OwnedSemaphorePermit,
    handles: sftp::HandleQuota,
    fs: Audited<Permissioned<Fs>>,
    /// The session's number within the connection, from 1 (SFTP and SCP alike).
    number: u64,
    /// Cancelled when the client closes the channel.
    end: CancellationToken,
}

impl<B: UserFilesystems> Handler for Connection<B> {
    type Error = anyhow::Error;

    /// The client's first question: which methods this user may use.
    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        let span = self.span.clone();
        async {
            self.refuse_if_banned()?;
            Ok(self.reject())
        }
        .instrument(span)
        .await
    }

    /// Answering the offer without a signature round trip for keys that cannot succeed.
    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let span = self.span.clone();
        async {
            self.refuse_if_banned()?;
            if self.user_with_key(user, offer.public_key).is_some() {
                return Ok(Auth::Accept);
            }
            let fingerprint = fingerprint(offer.public_key);
            // russh offers a certificate's key here without the certificate; with CAs trusted,
            // any key might come with one, so the decision waits for the signed request.
            if !self.context.users.current().trusted_user_cas.is_empty() {
                return Ok(Auth::Accept);
            }
            self.refuse_key(user, fingerprint)
        }
        .instrument(span)
        .await
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let span = self.span.clone();
        async {
            self.refuse_if_banned()?;
            let fingerprint = fingerprint(key.public_key);
            match self.user_with_key(user, key.public_key) {
                Some(found) => Ok(self.accept_login(found, Method::PublicKey, Some(fingerprint))),
                None => self.refuse_key(user, fingerprint),
            }
        }
        .instrument(span)
        .await
    }

    /// Called once the client has proved it holds the certificate's key.
    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        let span = self.span.clone();
        async {
            self.refuse_if_banned()?;
            let fingerprint = certificate
                .public_key()
                .fingerprint(HashAlg::Sha256)
                .to_string();
            match self.user_with_certificate(user, certificate) {
                Some(found) => Ok(self.accept_login(found, Method::Certificate, Some(fingerprint))),
                None => self.refuse_key(user, fingerprint),
            }
        }
        .instrument(span)
        .await
    }

    /// Only users with a `password_hash` can pass; for others the same slow check runs
    /// against a decoy, so the answer's timing does not tell them apart.
    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let span = self.span.clone();
        async {
            self.refuse_if_banned()?;
            // From outside the user's networks the decoy is checked instead of their hash.
            let found = self.user_here(user);
            let hash = found.as_ref().and_then(|u| u.password_hash.clone());
            let checks = self.guard.password_checks();
            if checks.check(hash, password.to_string()).await {
                if let Some(found) = found {
                    return Ok(self.accept_login(found, Method::Password, None));
                }
            }
            let reason = self.refusal.take();
            let reason = reason.as_deref().unwrap_or(WRONG_PASSWORD);
            self.fail_login(user, Method::Password, None, reason)
        }
        .instrument(span)
        .await
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let span = self.span.clone();
        async {
            let limit = self.context.limits.max_channels_per_connection;
            if self.open_channels() >= limit {
                let reason = format!(
                    "too many channels on this connection (the limit is {limit}, \
                     limits.max_channels_per_connection)"
                );
                tracing::warn!(%reason, "channel refused");
                reply
                    .reject(ChannelOpenFailure::Other {
                        code: RESOURCE_SHORTAGE,
                        reason,
                    })
                    .await;
                return Ok(());
            }
            self.channels.insert(channel.id(), channel);
            reply.accept().await;
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// The client closed a channel: an SFTP session on it ends (nothing can reach the client
    /// through it any more), an unbound one is forgotten.
    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let span = self.span.clone();
        async {
            self.channels.remove(&channel);
            self.sftp_channels.remove(&channel);
            if let Some(end) = self.session_ends.remove(&channel) {
                end.cancel();
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// The client has sent its last request. scp and sftp report failure unless they see
    /// exit-status 0 before the channel closes, and the channel closes as soon as the SFTP task
    /// drops its stream, so the status goes out now.
    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let span = self.span.clone();
        async {
            if self.sftp_channels.remove(&channel) {
                session.exit_status_request(channel, 0)?;
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let span = self.span.clone();
        async {
            if name == "sftp" {
                return self.start_sftp(channel, session);
            }
            tracing::info!(subsystem = name, "subsystem refused");
            session.channel_failure(channel)?;
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let span = self.span.clone();
        async {
            let refused = match scp::parse(data) {
                Ok(command) => return self.start_scp(channel, command, session),
                Err(refused) => refused,
            };
            tracing::info!(
                command = %Untrusted(String::from_utf8_lossy(data)),
                reason = %refused,
                "exec refused: only scp -t and scp -f are served"
            );
            match refused {
                scp::Refused::Unsupported(reason) => {
                    self.channels.remove(&channel);
                    fail_command(channel, &format!("scp: {reason}"), session)
                }
                scp::Refused::NotScp(_) => self.refuse_channel(channel, session),
            }
        }
        .instrument(span)
        .await
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let span = self.span.clone();
        async { self.refuse_channel(channel, session) }
            .instrument(span)
            .await
    }
}

impl<B> Connection<B> {
    /// Fails a request and closes its channel, so the client stops waiting on it.
    fn refuse_channel(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), anyhow::Error> {
        self.channels.remove(&channel);
        session.channel_failure(channel)?;
        session.close(channel)?;
        Ok(())
    }
}

/// Why a login failed, for the log and the audit line (the client is told none of them).
const REFUSED: &str = "refused";
const NO_SUCH_USER: &str = "no such user";
const NOT_AUTHORIZED: &str = "the key is not one of the user's authorized keys";
const WRONG_PASSWORD: &str = "wrong password, or the user has no password";

/// A key's SHA256 fingerprint, as `ssh-keygen -l` prints it.
fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// SSH_OPEN_RESOURCE_SHORTAGE (RFC 4254, 5.1), sent with a reason of our own.
const RESOURCE_SHORTAGE: u32 = 4;

/// Fails a subsystem request with `reason` on the channel's stderr, which OpenSSH's clients
/// print (a failed request alone only says "subsystem request failed"), then closes it.
fn refuse_with_reason(
    channel: ChannelId,
    reason: &str,
    session: &mut Session,
) -> anyhow::Result<()> {
    let line = format!("dropgate: {reason}\r\n");
    session.extended_data(channel, 1, line.into_bytes())?;
    session.channel_failure(channel)?;
    session.close(channel)?;
    Ok(())
}

/// Ends an exec request the way a command that rejects its arguments does: `message` on stderr,
/// exit status 1. OpenSSH's ssh prints that stderr; a refused request it would only report as
/// "exec request failed".
fn fail_command(channel: ChannelId, message: &str, session: &mut Session) -> anyhow::Result<()> {
    session.channel_success(channel)?;
    session.extended_data(channel, 1, format!("{message}\n").into_bytes())?;
    session.exit_status_request(channel, 1)?;
    session.eof(channel)?;
    session.close(channel)?;
    Ok(())
}
