//! One SSH connection: who logged in, and which channel runs the SFTP subsystem.
//!
//! The russh handler callbacks run on the connection's own task, so nothing here may wait on
//! SFTP work: the subsystem runs on a task of its own, and the callbacks only start it.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use russh::keys::PublicKey;
use russh::server::{
    Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId};

use super::{Backend, ServerContext};
use crate::config::User;
use crate::sftp::{self, SessionLimits};

pub struct Connection<B> {
    id: u64,
    peer: SocketAddr,
    context: Arc<ServerContext<B>>,
    /// Set once authentication succeeds.
    user: Option<User>,
    /// Session channels opened but not yet bound to a subsystem.
    channels: HashMap<ChannelId, Channel<Msg>>,
    /// Channels running the SFTP subsystem.
    sftp_channels: HashSet<ChannelId>,
}

impl<B: Backend> Connection<B> {
    pub fn new(id: u64, peer: SocketAddr, context: Arc<ServerContext<B>>) -> Self {
        Connection {
            id,
            peer,
            context,
            user: None,
            channels: HashMap::new(),
            sftp_channels: HashSet::new(),
        }
    }

    /// The configured user if `key` is one of their authorized keys.
    fn user_with_key(&self, name: &str, key: &PublicKey) -> Option<&User> {
        let user = self.context.users.get(name)?;
        user.keys
            .iter()
            .any(|k| k.key_data() == key.key_data())
            .then_some(user)
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
        tokio::spawn(async move {
            tracing::info!(conn, user = %user.name, "sftp session started");
            let limits = SessionLimits {
                user: user.name.clone(),
                ..SessionLimits::default()
            };
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

    /// Answering the offer without a signature round trip for keys that cannot succeed.
    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(match self.user_with_key(user, offer.public_key) {
            Some(_) => Auth::Accept,
            None => Auth::reject(),
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        match self.user_with_key(user, key.public_key).cloned() {
            Some(found) => {
                tracing::info!(conn = self.id, peer = %self.peer, user, "login accepted");
                self.user = Some(found);
                Ok(Auth::Accept)
            }
            None => {
                tracing::info!(conn = self.id, peer = %self.peer, user, "login refused");
                Ok(Auth::reject())
            }
        }
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
