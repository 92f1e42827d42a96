//! One SSH connection: who logged in, and which channel runs the SFTP subsystem.
//!
//! The russh handler callbacks run on the connection's own task, so nothing here may wait on
//! SFTP work: the subsystem runs on a task of its own, and the callbacks only start it.
//!
//! Login: public keys for every user (with their authorized_keys options, [`authorized_keys`]),
//! user certificates signed by a trusted CA ([`certificate`]), a password only for users with
//! a `password_hash`. The methods offered are the same for every user name, known or not, so
//! they reveal nothing about who exists. Failed logins count towards the address's ban: every
//! wrong password, and one per connection whose keys were all refused (a client offering
//! several keys is one attempt, not several). A banned address is disconnected at its next
//! attempt. Logins, good and bad, go to the audit log.
//!
//! What a connection opens ends with it: the handler owns its SFTP sessions' tasks, and russh
//! drops the handler when the connection ends, which aborts them; a session also ends when the
//! client closes its channel. Ending a session drops its open uploads uncommitted (spool files
//! removed, names released), even if its writer was waiting for window the client will never
//! grant. Channels per connection and SFTP sessions per user are capped ([`super::quotas`]); a
//! refusal says why, to the client and in the log.
//!
//! russh runs the handler on a task of its own, so every callback enters the connection's
//! tracing span itself (see [`super`]), and each SFTP session's task enters a span of its own
//! below it.
//!
//! [`authorized_keys`]: crate::users::authorized_keys

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use russh::keys::{Certificate, PublicKey};
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
    quotas: Arc<UserQuotas>,
    /// Session channels opened but not yet bound to a subsystem.
    channels: HashMap<ChannelId, Channel<Msg>>,
    /// Channels running the SFTP subsystem that still owe the client an exit status.
    sftp_channels: HashSet<ChannelId>,
    /// The SFTP sessions running (each returns its channel when it ends); dropping the set, as
    /// russh does with this handler when the connection ends, aborts them.
    sftp_sessions: JoinSet<ChannelId>,
    /// SFTP sessions started so far; numbers them within the connection, from 1.
    sftp_sessions_started: u64,
    /// Ends one SFTP session, when the client closes its channel.
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
            quotas,
            channels: HashMap::new(),
            sftp_channels: HashSet::new(),
            sftp_sessions: JoinSet::new(),
            sftp_sessions_started: 0,
            session_ends: HashMap::new(),
        }
    }

    /// Channels open now: unbound ones and those running an SFTP session.
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

    fn accept_login(&mut self, user: User, method: Method) -> Auth {
        self.span
            .record("user", tracing::field::display(Untrusted(&user.name)));
        tracing::info!(method = method.name(), "login accepted");
        self.record_login(&user.name, method, None);
        let _ = self.logged_in.set(user.name.clone());
        self.pre_login = None;
        self.user = Some(user);
        Auth::Accept
    }

    /// Logs and counts a failed login; an error if it got the address banned.
    fn fail_login(&mut self, name: &str, method: Method) -> anyhow::Result<Auth> {
        tracing::info!(user = name, method = method.name(), "login refused");
        self.record_login(name, method, Some("refused"));
        if self.guard.record_failure(self.peer.ip()) {
            tracing::warn!(
                ban_secs = self.context.limits.ban_secs,
                "address banned after repeated failed logins"
            );
            anyhow::bail!("address banned after failed logins");
        }
        Ok(self.reject())
    }

    /// A refused key: the first one of a connection counts as a failed login.
    fn refuse_key(&mut self, name: &str) -> anyhow::Result<Auth> {
        if self.key_failure_counted {
            return Ok(self.reject());
        }
        self.key_failure_counted = true;
        self.fail_login(name, Method::PublicKey)
    }

    fn record_login(&self, name: &str, method: Method, error: Option<&str>) {
        let mut line = self.audit.event("login");
        line.user = Some(name.to_string());
        line.method = Some(method.name());
        line.result = Some(if error.is_none() { "ok" } else { "failed" });
        line.error = error.map(str::to_string);
        self.audit.record(&line);
        crate::metrics::login(method.name(), if error.is_none() { "ok" } else { "failed" });
    }

    /// The configured user if `key` is one of their authorized keys and its options let it
    /// log in from here now; why not is logged.
    fn user_with_key(&self, name: &str, key: &PublicKey) -> Option<User> {
        let logins = self.context.users.current();
        let user = logins.users.get(name)?;
        let now = certificate::unix_now() as i64;
        let mut refusal = None;
        for entry in user
            .keys
            .iter()
            .filter(|k| k.key.key_data() == key.key_data())
        {
            match entry.check(self.peer.ip(), now) {
                Ok(()) => return Some(user.clone()),
                Err(reason) => refusal = Some(reason),
            }
        }
        if let Some(reason) = refusal {
            tracing::info!(user = name, %reason, "key refused");
        }
        None
    }

    /// The configured user if `cert` vouches for them; the reason is logged otherwise.
    fn user_with_certificate(&self, name: &str, cert: &Certificate) -> Option<User> {
        let logins = self.context.users.current();
        let user = logins.users.get(name)?;
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
                Some(user.clone())
            }
            Err(reason) => {
                tracing::info!(user = name, key_id = cert.key_id(), reason = %Untrusted(&reason), "certificate refused");
                None
            }
        }
    }

    fn start_sftp(&mut self, channel_id: ChannelId, session: &mut Session) -> anyhow::Result<()> {
        let channel = self.channels.remove(&channel_id);
        let (Some(user), Some(channel)) = (self.user.clone(), channel) else {
            session.channel_failure(channel_id)?;
            return Ok(());
        };
        let quota = self.quotas.for_user(&user.name);
        let slot = match quota.start_session() {
            Ok(slot) => slot,
            Err(reason) => {
                tracing::warn!(%reason, "sftp session refused");
                return refuse_with_reason(channel_id, &reason, session);
            }
        };
        let fs = match self.context.filesystems.filesystem_for(&user) {
            Ok(fs) => fs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the user's filesystem");
                session.channel_failure(channel_id)?;
                return Ok(());
            }
        };
        session.channel_success(channel_id)?;
        self.sftp_channels.insert(channel_id);
        self.sftp_sessions_started += 1;
        let span = tracing::info_span!(
            parent: &self.span,
            "sftp",
            session = self.sftp_sessions_started
        );
        let fs = Audited::new(
            Permissioned::new(fs, user.permissions),
            self.audit.for_user(&user.name),
        );
        let limits = SessionLimits {
            user: user.name.clone(),
            max_handles: self.context.limits.max_handles_per_session,
            user_handles: Some(quota.handles),
            ..SessionLimits::default()
        };
        let end = CancellationToken::new();
        self.session_ends.insert(channel_id, end.clone());
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
            // russh offers a certificate's key here without the certificate; with CAs trusted,
            // any key might come with one, so the decision waits for the signed request.
            if !self.context.users.current().trusted_user_cas.is_empty() {
                return Ok(Auth::Accept);
            }
            self.refuse_key(user)
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
            match self.user_with_key(user, key.public_key) {
                Some(found) => Ok(self.accept_login(found, Method::PublicKey)),
                None => self.refuse_key(user),
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
            match self.user_with_certificate(user, certificate) {
                Some(found) => Ok(self.accept_login(found, Method::Certificate)),
                None => self.refuse_key(user),
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
            let found = self.context.users.current().users.get(user).cloned();
            let hash = found.as_ref().and_then(|u| u.password_hash.clone());
            let checks = self.guard.password_checks();
            if checks.check(hash, password.to_string()).await {
                if let Some(found) = found {
                    return Ok(self.accept_login(found, Method::Password));
                }
            }
            self.fail_login(user, Method::Password)
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
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let span = self.span.clone();
        async {
            tracing::info!("exec refused: only the sftp subsystem is offered");
            self.refuse_channel(channel, session)
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
