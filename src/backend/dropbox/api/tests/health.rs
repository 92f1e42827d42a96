//! The client's health against the emulator: what a sign-in, a missing path, a refused refresh
//! token and a token's lifetime leave in it, and that clones share it.

use std::time::SystemTime;

use super::*;

#[tokio::test]
async fn health_records_the_token_expiry_and_successes_but_not_answers_about_paths() {
    let h = Harness::start(500).await;
    let client = h.refreshing_client();
    assert_eq!(client.health(), Health::default(), "nothing sent yet");

    let before = SystemTime::now();
    client.get_current_account().await.unwrap();
    let missing = client.get_metadata("/not-there").await.unwrap_err();
    assert!(missing.is_not_found(), "{missing:?}");
    let after = SystemTime::now();

    let health = client.clone().health();
    assert_eq!(
        health.last_error, None,
        "a missing path is not the account's fault"
    );
    let ok_at = health.last_ok_at.expect("a success");
    assert!(before <= ok_at && ok_at <= after);
    // The emulator's default access_token_ttl_secs.
    let lifetime = Duration::from_secs(14_400);
    let expires = health
        .token_expires_at
        .expect("the refreshed token's expiry");
    assert!(
        before + lifetime <= expires && expires <= after + lifetime,
        "{expires:?} is not about {lifetime:?} from now"
    );
    assert_eq!(h.static_client().health().token_expires_at, None);
}

#[tokio::test]
async fn a_refused_refresh_token_is_the_last_error_of_every_clone() {
    let h = Harness::start(500).await;
    let client = h.refreshing_client();
    client.get_current_account().await.unwrap();
    let ok_at = client.health().last_ok_at.unwrap();

    h.faults(json!([{
        "kind": "error",
        "route": "oauth2/token",
        "status": 400,
        "body": {"error": "invalid_grant", "error_description": "refresh token is invalid or revoked"}
    }]))
    .await;
    h.hook(reqwest::Method::POST, "expire_tokens", None).await;
    let clone = client.clone();
    let err = clone.list_folder("", None).await.unwrap_err();
    assert!(err.is_credentials_problem(), "{err:?}");

    let health = client.health();
    assert_eq!(
        health.last_error.as_deref(),
        Some("the refresh token was revoked or is invalid: re-run dropgate auth")
    );
    assert!(health.last_error_at.unwrap() >= ok_at);
    assert_eq!(
        health.last_ok_at,
        Some(ok_at),
        "a failure leaves the last success alone"
    );
    assert!(!format!("{health:?}").contains(demo::REFRESH_TOKEN));
}
