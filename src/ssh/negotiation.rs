//! What each connection negotiated: its client's hello ([`super::client_hello`]) judged
//! against the algorithm policy and the host keys, as russh judges it.
//!
//! The outcome is logged where an admin needs it (a refused key exchange with what the client
//! offered and what the policy allows; a legacy algorithm the `compatible` policy let through)
//! and handed to the connection's audit session, whose login lines carry the client's version
//! and the algorithms.

use std::sync::{Arc, OnceLock};

use russh::keys::{Algorithm, PrivateKey};
use tokio::net::TcpStream;

use super::algorithms::{Handshake, Policy};
use super::client_hello::{ClientHello, HelloRecorder};
use crate::audit_log::AuditSession;
use crate::log_safe::Untrusted;

/// The algorithm policy and the host keys' algorithms: what a client's hello is judged by.
pub struct KeyExchange {
    policy: Policy,
    key_algorithms: Vec<Algorithm>,
}

impl KeyExchange {
    pub fn new(policy: Policy, host_keys: &[PrivateKey]) -> Self {
        KeyExchange {
            key_algorithms: host_keys.iter().map(PrivateKey::algorithm).collect(),
            policy,
        }
    }

    /// Settles what the client's hello negotiates and says so in the log: a failure (russh
    /// then ends the connection) and any legacy algorithm the policy let through.
    fn observe(&self, hello: ClientHello) -> Handshake {
        let negotiated = self
            .policy
            .negotiate(&hello.algorithms, &self.key_algorithms);
        let client = Untrusted(&hello.version);
        match &negotiated {
            Err(no_common) => {
                tracing::warn!(client = %client, "key exchange refused: {no_common}");
            }
            Ok(chosen) => {
                let legacy = chosen.legacy();
                if !legacy.is_empty() {
                    tracing::warn!(
                        client = %client,
                        legacy = legacy.join(","),
                        "legacy algorithms negotiated (server.algorithms = {})",
                        self.policy.name
                    );
                }
            }
        }
        Handshake {
            client_version: hello.version,
            negotiated,
        }
    }
}

/// The socket with a recorder in front that settles the connection's [`Handshake`] once the
/// client's hello has passed (see [`super::client_hello`]), and hands it to the audit session for
/// the login lines.
pub fn record_hello(
    socket: TcpStream,
    key_exchange: Arc<KeyExchange>,
    handshake: Arc<OnceLock<Handshake>>,
    audit: &AuditSession,
) -> HelloRecorder<TcpStream> {
    // russh reads on a task of its own, outside the connection's span.
    let span = tracing::Span::current();
    let negotiation = audit.negotiation.clone();
    HelloRecorder::new(socket, move |hello| {
        let _entered = span.enter();
        let settled = key_exchange.observe(hello);
        let _ = negotiation.set(settled.for_audit());
        let _ = handshake.set(settled);
    })
}
