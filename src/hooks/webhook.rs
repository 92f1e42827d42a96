//! Webhook delivery: the event JSON POSTed to the hook's URL, signed so the receiver can tell
//! it came from this gateway and was not replayed from long ago.
//!
//! The signature follows the common webhook-signing scheme: `Dropgate-Signature:
//! t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with the hook's secret. Signing the
//! time with the body lets a receiver refuse old requests; the event id
//! (`Dropgate-Event-Id`) lets it drop a redelivery. Only a 2xx answer counts as delivered;
//! redirects are not followed (a POST that moved is a configuration error to see, not to
//! guess at).

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::event::HookEvent;
use super::queue::unix_now;
use crate::tls_trust::Trust;

pub const SIGNATURE_HEADER: &str = "Dropgate-Signature";
pub const EVENT_ID_HEADER: &str = "Dropgate-Event-Id";

/// One hook's HTTP client and signing key.
pub struct Webhook {
    client: reqwest::Client,
    url: url::Url,
    secret: Vec<u8>,
}

impl Webhook {
    /// `timeout` bounds each request from connect to the end of the answer, so a receiver that
    /// hangs costs one timeout per try, never the queue. An https receiver's certificate must
    /// chain to a CA of `trust`.
    pub fn new(
        url: url::Url,
        secret: Vec<u8>,
        timeout: Duration,
        trust: &Trust,
    ) -> anyhow::Result<Webhook> {
        let client = trust
            .apply(reqwest::Client::builder())
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dropgate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Webhook {
            client,
            url,
            secret,
        })
    }

    /// POSTs `event`; Ok only for a 2xx answer.
    pub async fn deliver(&self, event: &HookEvent) -> Result<(), String> {
        let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        let timestamp = unix_now();
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(&self.secret, timestamp, &body))
            .header(EVENT_ID_HEADER, &event.id)
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {status}"))
        }
    }
}

/// The header value for `body` sent at `timestamp`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// A failed request in a few words, without the URL (it may hold a token in its query).
fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    format!("{what}: {cause}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// v1 is the HMAC of "<t>.<body>", and the HMAC is the standard one (RFC 4231, case 2).
    #[test]
    fn the_signature_is_hmac_sha256_over_time_dot_body() {
        let header = signature(b"key", 1700000000, b"{\"a\":1}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(header, format!("t=1700000000,v1={expected}"));
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
