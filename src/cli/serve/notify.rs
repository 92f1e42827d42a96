//! Telling systemd how the service is doing (`Type=notify`): READY once partners can connect,
//! RELOADING/READY around a SIGHUP, STOPPING while uploads drain, each with a STATUS line that
//! `systemctl status` shows.
//!
//! With `Type=notify` systemd holds `systemctl start` (and every unit ordered after this one)
//! until READY=1, so "started" means the accounts signed in and the port accepts connections,
//! not merely that the process exists. The protocol is one datagram of `KEY=value` lines to
//! the unix socket named by `$NOTIFY_SOCKET`; a name starting with `@` is in the abstract
//! namespace (sd_notify(3)). The `sd-notify` crate does not handle that form, and the rest is
//! a single `send`, so it is written here. Outside systemd (no variable) every call does
//! nothing; a failed send is logged and never stops the gateway.

use std::os::unix::net::UnixDatagram;

const SOCKET_VARIABLE: &str = "NOTIFY_SOCKET";

/// The service manager, if the process was started by one that listens.
pub struct ServiceManager {
    socket: Option<UnixDatagram>,
}

impl ServiceManager {
    /// Connects to `$NOTIFY_SOCKET`; without it, a manager that ignores everything.
    pub fn from_env() -> ServiceManager {
        let Some(name) = std::env::var_os(SOCKET_VARIABLE) else {
            return ServiceManager { socket: None };
        };
        match connect(name.as_encoded_bytes()) {
            Ok(socket) => ServiceManager {
                socket: Some(socket),
            },
            Err(e) => {
                tracing::warn!(
                    socket = %name.to_string_lossy(),
                    error = %e,
                    "cannot reach the service manager's notify socket; not telling it anything"
                );
                ServiceManager { socket: None }
            }
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}\n"));
    }

    pub fn reloading(&self) {
        self.send("RELOADING=1\nSTATUS=reloading users and keys\n");
    }

    pub fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={status}\n"));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}\n"));
    }

    fn send(&self, message: &str) {
        let Some(socket) = &self.socket else { return };
        if let Err(e) = socket.send(message.as_bytes()) {
            tracing::warn!(error = %e, "cannot notify the service manager");
        }
    }
}

/// A datagram socket connected to `name`: a path, or `@name` in the abstract namespace.
fn connect(name: &[u8]) -> std::io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    match name.strip_prefix(b"@") {
        Some(abstract_name) => {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)?;
            socket.connect_addr(&address)?;
        }
        None => {
            use std::os::unix::ffi::OsStrExt;
            socket.connect(std::ffi::OsStr::from_bytes(name))?;
        }
    }
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(listener: &UnixDatagram) -> String {
        let mut buffer = [0u8; 512];
        let n = listener.recv(&mut buffer).unwrap();
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_socket_in_the_abstract_namespace() {
        let name = format!("dropgate-notify-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let listener = UnixDatagram::bind_addr(&address).unwrap();
        let manager = ServiceManager {
            socket: Some(connect(format!("@{name}").as_bytes()).unwrap()),
        };
        manager.ready("serving");
        assert_eq!(received(&listener), "READY=1\nSTATUS=serving\n");
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        assert!(connect(b"/nonexistent/dropgate-notify").is_err());
    }
}
