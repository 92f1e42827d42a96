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
//! [`authorized_keys`]: super::authorized_keys

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use russh::keys::{Certificate, PublicKey};
use russh::server::{
    Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, MethodKind, MethodSet};

use super::certificate;
use super::guard::{AddressGuard, PreLoginSlot};
use super::{Backend, ServerContext};
use crate::audit::AuditSession;
use crate::config::User;
use crate::sftp::{self, SessionLimits};
use crate::vfs::audit::Audited;
use crate::vfs::permissions::Permissioned;

pub struct Connection<B> {
    id: u64,
    peer: SocketAddr,
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
    /// Session channels opened but not yet bound to a subsystem.
    channels: HashMap<ChannelId, Channel<Msg>>,
    /// Channels running the SFTP subsystem.
    sftp_channels: HashSet<ChannelId>,
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

impl<B: Backend> Connection<B> {
    pub fn new(
        context: Arc<ServerContext<B>>,
        guard: Arc<AddressGuard>,
        pre_login: PreLoginSlot,
        audit: AuditSession,
        logged_in: Arc<OnceLock<String>>,
    ) -> Self {
        Connection {
            id: audit.conn,
            peer: audit.remote,
            context,
            guard,
            pre_login: Some(pre_login),
            audit,
            logged_in,
            user: None,
            key_failure_counted: false,
            channels: HashMap::new(),
            sftp_channels: HashSet::new(),
        }
    }

    /// The methods offered, the same whoever asks: public key, and password if any user has
    /// one. Answering per user would tell a client which names exist and which have a
    /// password; a password for a user without one fails after the same slow check.
    fn methods(&self) -> MethodSet {
        let mut methods = vec![MethodKind::PublicKey];
        if self.context.directory.current().any_password() {
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
            tracing::info!(conn = self.id, peer = %self.peer, "banned address disconnected");
            anyhow::bail!("address banned after failed logins");
        }
        Ok(())
    }

    fn accept_login(&mut self, user: User, method: Method) -> Auth {
        tracing::info!(conn = self.id, peer = %self.peer, user = %user.name, method = method.name(), "login accepted");
        self.record_login(&user.name, method, None);
        let _ = self.logged_in.set(user.name.clone());
        self.pre_login = None;
        self.user = Some(user);
        Auth::Accept
    }

    /// Logs and counts a failed login; an error if it got the address banned.
    fn fail_login(&mut self, name: &str, method: Method) -> anyhow::Result<Auth> {
        tracing::info!(conn = self.id, peer = %self.peer, user = name, method = method.name(), "login refused");
        self.record_login(name, method, Some("refused"));
        if self.guard.record_failure(self.peer.ip()) {
            tracing::warn!(
                peer = %self.peer,
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
        let logins = self.context.directory.current();
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
            tracing::info!(conn = self.id, peer = %self.peer, user = name, %reason, "key refused");
        }
        None
    }

    /// The configured user if `cert` vouches for them; the reason is logged otherwise.
    fn user_with_certificate(&self, name: &str, cert: &Certificate) -> Option<User> {
        let logins = self.context.directory.current();
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
                    conn = self.id,
                    user = name,
                    key_id = cert.key_id(),
                    serial = cert.serial(),
                    "certificate accepted"
                );
                Some(user.clone())
            }
            Err(reason) => {
                tracing::info!(conn = self.id, user = name, key_id = cert.key_id(), %reason, "certificate refused");
                None
            }
        }
    }

    fn start_sftp(&mut self, channel_id: ChannelId, session: &mut Session) -> anyhow::Result<()> {
        let (Some(user), Some(channel)) = (self.user.clone(), self.channels.remove(&channel_id))
        else {
            session.channel_failure(channel_id)?;
            return Ok(());
        };
        let fs = match self.context.backend.filesystem_for(&user) {
            Ok(fs) => fs,
            Err(e) => {
                tracing::warn!(conn = self.id, user = %user.name, error = %e, "cannot open the user's filesystem");
                session.channel_failure(channel_id)?;
                return Ok(());
            }
        };
        session.channel_success(channel_id)?;
        self.sftp_channels.insert(channel_id);
        let conn = self.id;
        let fs = Audited::new(
            Permissioned::new(fs, user.permissions),
            self.audit.for_user(&user.name),
        );
        let limits = SessionLimits {
            user: user.name.clone(),
            max_handles: self.context.limits.max_handles_per_session,
            ..SessionLimits::default()
        };
        tokio::spawn(async move {
            tracing::info!(conn, user = %user.name, permissions = %user.permissions, "sftp session started");
            if let Err(e) = sftp::serve(channel.into_stream(), fs, limits).await {
                tracing::info!(conn, error = %e, "sftp session ended with an error");
            }
            // Dropping the channel stream closes the channel.
        });
        Ok(())
    }
}

impl<B: Backend> Handler for Connection<B> {
    type Error = anyhow::Error;

    /// The client's first question: which methods this user may use.
    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        self.refuse_if_banned()?;
        Ok(self.reject())
    }

    /// Answering the offer without a signature round trip for keys that cannot succeed.
    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        self.refuse_if_banned()?;
        if self.user_with_key(user, offer.public_key).is_some() {
            return Ok(Auth::Accept);
        }
        // russh offers a certificate's key here without the certificate; with CAs trusted,
        // any key might come with one, so the decision waits for the signed request.
        if !self.context.directory.current().trusted_user_cas.is_empty() {
            return Ok(Auth::Accept);
        }
        self.refuse_key(user)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        self.refuse_if_banned()?;
        match self.user_with_key(user, key.public_key) {
            Some(found) => Ok(self.accept_login(found, Method::PublicKey)),
            None => self.refuse_key(user),
        }
    }

    /// Called once the client has proved it holds the certificate's key.
    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        self.refuse_if_banned()?;
        match self.user_with_certificate(user, certificate) {
            Some(found) => Ok(self.accept_login(found, Method::Certificate)),
            None => self.refuse_key(user),
        }
    }

    /// Only users with a `password_hash` can pass; for others the same slow check runs
    /// against a decoy, so the answer's timing does not tell them apart.
    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        self.refuse_if_banned()?;
        let found = self.context.directory.current().users.get(user).cloned();
        let hash = found.as_ref().and_then(|u| u.password_hash.clone());
        let checks = self.guard.password_checks();
        if checks.check(hash, password.to_string()).await {
            if let Some(found) = found {
                return Ok(self.accept_login(found, Method::Password));
            }
        }
        self.fail_login(user, Method::Password)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    /// The client has sent its last request. scp and sftp report failure unless they see
    /// exit-status 0 before the channel closes, and the channel closes as soon as the SFTP task
    /// drops its stream, so the status goes out now.
    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.sftp_channels.remove(&channel) {
            session.exit_status_request(channel, 0)?;
        }
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "sftp" {
            return self.start_sftp(channel, session);
        }
        tracing::info!(conn = self.id, subsystem = name, "subsystem refused");
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::info!(
            conn = self.id,
            "exec refused: only the sftp subsystem is offered"
        );
        self.refuse_channel(channel, session)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_channel(channel, session)
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
