//! TLS trust end to end: Dropbox reached through a TLS front whose certificate a test CA signed,
//! as through a proxy that inspects TLS. Without `ca_file` the account's sign-in fails at start
//! with a certificate error that says what to do; with it, a real upload goes through.
//!
//! The front is a real TLS server (rustls) on loopback that passes the decrypted bytes on to
//! the emulator; the gateway's HTTPS client is the one production uses.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use crate::common::process::share_process_counters;
use crate::common::{content_hash, random_bytes, Bench, Config, Gateway, GatewayConfig};

/// A CA made for the test, and a certificate for 127.0.0.1 it signed.
struct TestCa {
    ca_pem: String,
    server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl TestCa {
    fn new() -> TestCa {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(
            rcgen::DnType::CommonName,
            "dropgate test inspecting proxy CA",
        );
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();

        let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key).unwrap();
        TestCa {
            ca_pem: ca_cert.pem(),
            server_chain: vec![server_cert.der().clone()],
            server_key: rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        }
    }

    /// Writes the CA certificate (PEM) as `dir/name`.
    fn write_ca(&self, dir: &Path, name: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.ca_pem).unwrap();
        path
    }

    /// Starts a TLS front on loopback passing every connection on to `backend`; returns its
    /// https base URL. It runs until the test's runtime ends.
    fn front(&self, backend: SocketAddr) -> String {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(self.server_chain.clone(), self.server_key.clone_key())
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let listener = TcpListener::from_std(listener).unwrap();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends its handshake here.
                    let Ok(mut client) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut upstream) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        format!("https://127.0.0.1:{port}")
    }
}

/// The emulator's address, from its base URL in the bench config.
fn emulator_address(config: &GatewayConfig) -> SocketAddr {
    let url = url::Url::parse(&config.accounts[0].api_url).unwrap();
    let host = url.host_str().unwrap();
    format!("{host}:{}", url.port().unwrap()).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_proxys_ca_the_sign_in_fails_with_a_certificate_error() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let emulator = crate::common::start_emulator(dir.path()).await;
    let mut config = GatewayConfig::bench(dir.path(), &emulator.base_url());
    let front = ca.front(emulator_address(&config));
    config.accounts[0].api_url = front;
    let path = dir.path().join("dropgate.toml");
    config.write(&path);
    let loaded = Config::load(&path).unwrap();
    let _counters = share_process_counters().await;

    let error = match Gateway::start(&loaded).await {
        Ok(_) => panic!("the gateway started trusting a certificate no trusted CA signed"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("account \"main\""), "{error}");
    assert!(error.contains("certificate is not trusted"), "{error}");
    assert!(error.contains("UnknownIssuer"), "{error}");
    assert!(
        error.contains("ca_file"),
        "the advice names the setting: {error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_proxys_ca_in_ca_file_an_upload_goes_through() {
    let ca = TestCa::new();
    let bench = Bench::configured(move |config, dir| {
        let front = ca.front(emulator_address(config));
        let account = &mut config.accounts[0];
        account.api_url = front;
        account.ca_file = Some(ca.write_ca(dir, "proxy-ca.pem"));
    })
    .await;
    let alice = bench.user("alice");
    let data = random_bytes(300_000);
    std::fs::write(bench.path("through-tls.bin"), &data).unwrap();

    bench.sftp_ok(&alice, "put through-tls.bin\n").await;

    let stored = bench.dropbox_stored("/alice/through-tls.bin").await;
    assert_eq!(stored["content_hash"], content_hash(&data));
    assert_eq!(bench.dropbox_download("/alice/through-tls.bin").await, data);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ca_file_that_holds_no_certificate_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = crate::common::start_emulator(dir.path()).await;
    let mut config = GatewayConfig::bench(dir.path(), &emulator.base_url());
    let not_a_ca = dir.path().join("not-a-ca.pem");
    std::fs::write(&not_a_ca, "just text\n").unwrap();
    config.accounts[0].ca_file = Some(not_a_ca);
    let path = dir.path().join("dropgate.toml");
    config.write(&path);
    let loaded = Config::load(&path).unwrap();
    let _counters = share_process_counters().await;

    let error = match Gateway::start(&loaded).await {
        Ok(_) => panic!("the gateway started with a CA file holding no certificate"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("not-a-ca.pem"), "{error}");
    assert!(error.contains("holds no certificate"), "{error}");
}
