//! Tokens, OAuth, team headers, fault injection, statistics and HTTP/2.

use base64::Engine;
use serde_json::json;
use sha2::Digest;

use super::{start, Answer};
use crate::demo_credentials as demo;

async fn token_call(h: &super::Harness, form: &[(&str, &str)]) -> Answer {
    let response = h
        .http
        .post(format!("{}/oauth2/token", h.emulator.base_url()))
        .form(form)
        .send()
        .await
        .unwrap();
    Answer::from(response).await
}

#[tokio::test]
async fn bad_and_expired_tokens_are_401() {
    let mut h = start().await;
    h.token = "nonsense".into();
    let invalid = h
        .rpc("users/get_current_account", serde_json::Value::Null)
        .await;
    assert_eq!(invalid.status, 401);
    assert_eq!(
        invalid.body["error"],
        json!({".tag": "invalid_access_token"})
    );

    let refreshed = token_call(
        &h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", demo::REFRESH_TOKEN),
            ("client_id", demo::APP_KEY),
            ("client_secret", demo::APP_SECRET),
        ],
    )
    .await;
    assert_eq!(refreshed.status, 200, "{:?}", refreshed.body);
    assert_eq!(refreshed.body["token_type"], "bearer");
    assert_eq!(refreshed.body["expires_in"], 14400);
    h.token = refreshed.body["access_token"].as_str().unwrap().to_string();
    let ok = h
        .rpc("users/get_current_account", serde_json::Value::Null)
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["email"], demo::PERSONAL_EMAIL);
    assert_eq!(ok.body["account_type"][".tag"], "basic");
    assert_eq!(ok.body["root_info"][".tag"], "user");

    h.hook(reqwest::Method::POST, "expire_tokens", None).await;
    let expired = h
        .rpc("users/get_space_usage", serde_json::Value::Null)
        .await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.summary(), "expired_access_token/..");
}

#[tokio::test]
async fn a_missing_or_malformed_authorization_header_is_bad_input() {
    let h = start().await;
    for header in [None, Some("Token abc"), Some("Bearer ")] {
        let mut request = h
            .http
            .post(h.url("users/get_current_account"))
            .header("Content-Type", "application/json")
            .body("null");
        if let Some(value) = header {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 400, "{header:?}");
        let text = response.text().await.unwrap();
        assert!(
            text.starts_with("Error in call to API function \"users/get_current_account\": ")
                && text.contains("\"Authorization\""),
            "{header:?}: {text}"
        );
    }
}

#[tokio::test]
async fn refresh_grant_errors() {
    let h = start().await;
    let basic = h
        .http
        .post(format!("{}/oauth2/token", h.emulator.base_url()))
        .basic_auth(demo::APP_KEY, Some(demo::APP_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", demo::TEAM_REFRESH_TOKEN),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    let bad_secret = token_call(
        &h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", demo::REFRESH_TOKEN),
            ("client_id", demo::APP_KEY),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(
        (bad_secret.status, bad_secret.body["error"].as_str()),
        (400, Some("invalid_client"))
    );
    let bad_token = token_call(
        &h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "nope"),
            ("client_id", demo::APP_KEY),
            ("client_secret", demo::APP_SECRET),
        ],
    )
    .await;
    assert_eq!(bad_token.body["error"], "invalid_grant");
    let bad_grant = token_call(&h, &[("grant_type", "password")]).await;
    assert_eq!(bad_grant.body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn authorize_redirects_and_pkce_exchange_checks_the_verifier() {
    let h = start().await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let verifier = "a-verifier-of-sufficient-length-0123456789-abcdefghij";
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier));
    let redirect_uri = "http://localhost:9999/cb?command=register_dropbox_api";
    let authorize = |challenge: String| {
        no_redirects
            .get(format!("{}/oauth2/authorize", h.emulator.base_url()))
            .query(&[
                ("client_id", demo::APP_KEY),
                ("response_type", "code"),
                ("redirect_uri", redirect_uri),
                ("state", "xyz"),
                ("token_access_type", "offline"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])
            .send()
    };
    let response = authorize(challenge.clone()).await.unwrap();
    assert_eq!(response.status(), 302);
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let query: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(query["command"], "register_dropbox_api");
    assert_eq!(query["state"], "xyz");
    let code = query["code"].clone();

    let wrong = token_call(
        &h,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", "wrong"),
            ("client_id", demo::APP_KEY),
        ],
    )
    .await;
    assert_eq!(wrong.body["error"], "invalid_grant");

    let response = authorize(challenge).await.unwrap();
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let ok = token_call(
        &h,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
            ("client_id", demo::APP_KEY),
        ],
    )
    .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.body["account_id"], demo::PERSONAL_ACCOUNT_ID);
    let refresh = ok.body["refresh_token"].as_str().unwrap();
    let again = token_call(
        &h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", demo::APP_KEY),
        ],
    )
    .await;
    assert_eq!(
        again.status, 200,
        "PKCE refresh tokens need no secret: {:?}",
        again.body
    );
}

#[tokio::test]
async fn a_denied_authorization_goes_back_with_dropboxs_error_and_no_code() {
    let h = start().await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects
        .get(format!("{}/oauth2/authorize", h.emulator.base_url()))
        .query(&[
            ("client_id", demo::APP_KEY),
            ("response_type", "code"),
            (
                "redirect_uri",
                "http://localhost:9999/?command=register_dropbox_api",
            ),
            ("state", "s1"),
            ("emulator_decision", "deny"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let query: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(query["command"], "register_dropbox_api");
    assert_eq!(query["error"], "access_denied");
    assert!(query["error_description"].contains("chose not to give"));
    assert_eq!(query["state"], "s1");
    assert!(!query.contains_key("code"));
}

#[tokio::test]
async fn team_tokens_select_a_member_and_path_root_shows_the_team_space() {
    let mut h = start().await;
    h.token = demo::TEAM_ACCESS_TOKEN.into();
    let unselected = h
        .rpc("users/get_current_account", serde_json::Value::Null)
        .await;
    assert_eq!(unselected.status, 400);

    let info = h.rpc("team/members/get_info_v2", json!({"members": [{".tag": "email", "email": demo::ALICE_EMAIL}, {".tag": "email", "email": "x@y.z"}]})).await;
    assert_eq!(info.status, 200, "{:?}", info.body);
    assert_eq!(info.body["members_info"][0][".tag"], "member_info");
    assert_eq!(
        info.body["members_info"][0]["profile"]["team_member_id"],
        demo::ALICE_TEAM_MEMBER_ID
    );
    assert_eq!(
        info.body["members_info"][1],
        json!({".tag": "id_not_found", "id_not_found": "x@y.z"})
    );

    let as_alice = |route: &str, arg: serde_json::Value, root: Option<String>| {
        let mut request = h
            .http
            .post(h.url(route))
            .bearer_auth(&h.token)
            .header("Dropbox-API-Select-User", demo::ALICE_TEAM_MEMBER_ID)
            .header("Content-Type", "application/json")
            .body(arg.to_string());
        if let Some(root) = root {
            request = request.header("Dropbox-API-Path-Root", root);
        }
        async move { Answer::from(request.send().await.unwrap()).await }
    };
    let account = as_alice("users/get_current_account", serde_json::Value::Null, None).await;
    assert_eq!(account.body["account_type"][".tag"], "business");
    assert_eq!(
        account.body["root_info"]["root_namespace_id"],
        demo::TEAM_ROOT_NAMESPACE_ID
    );
    assert_eq!(account.body["team_member_id"], demo::ALICE_TEAM_MEMBER_ID);

    let made = as_alice("files/create_folder_v2", json!({"path": "/Mine"}), None).await;
    assert_eq!(made.body["metadata"]["path_display"], "/Mine");
    let root = json!({".tag": "root", "root": demo::TEAM_ROOT_NAMESPACE_ID}).to_string();
    let listing = as_alice("files/list_folder", json!({"path": ""}), Some(root.clone())).await;
    let names: Vec<_> = listing.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&demo::TEAM_FOLDER_NAME) && names.contains(&demo::ALICE_HOME_FOLDER),
        "{names:?}"
    );
    let nested = as_alice(
        "files/get_metadata",
        json!({"path": "/Alice Smith/mine"}),
        Some(root),
    )
    .await;
    assert_eq!(nested.body["path_display"], "/Alice Smith/Mine");

    let bad_root = as_alice(
        "files/list_folder",
        json!({"path": ""}),
        Some(json!({".tag": "root", "root": "999"}).to_string()),
    )
    .await;
    assert_eq!(bad_root.status, 422);
    assert_eq!(bad_root.body["error"][".tag"], "invalid_root");
    let bob_home =
        json!({".tag": "namespace_id", "namespace_id": demo::BOB_HOME_NAMESPACE_ID}).to_string();
    let forbidden = as_alice("files/list_folder", json!({"path": ""}), Some(bob_home)).await;
    assert_eq!(
        (forbidden.status, forbidden.body["error"].clone()),
        (422, json!({".tag": "no_permission"}))
    );
}

#[tokio::test]
async fn faults_and_stats() {
    let h = start().await;
    let rules = json!({"rules": [
        {"kind": "status_429", "route": "files/get_metadata", "count": 1, "retry_after": 2},
        {"kind": "status_503", "route": "files/get_metadata", "count": 1},
        {"kind": "drop_before", "route": "files/upload", "count": 1},
        {"kind": "drop_after", "route": "files/create_folder_v2", "count": 1},
    ]});
    h.hook(reqwest::Method::POST, "faults", Some(rules)).await;
    let limited = h.rpc("files/get_metadata", json!({"path": "/x"})).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers["retry-after"], "2");
    assert_eq!(
        limited.body["error"],
        json!({"reason": {".tag": "too_many_requests"}, "retry_after": 2})
    );
    assert_eq!(
        h.rpc("files/get_metadata", json!({"path": "/x"}))
            .await
            .status,
        503
    );
    assert_eq!(
        h.rpc("files/get_metadata", json!({"path": "/x"}))
            .await
            .status,
        409
    );

    let dropped = h
        .http
        .post(h.url("files/upload"))
        .bearer_auth(&h.token)
        .header("Dropbox-API-Arg", r#"{"path":"/d.txt"}"#)
        .header("Content-Type", "application/octet-stream")
        .body("x")
        .send()
        .await;
    assert!(dropped.is_err(), "connection dropped before the request");
    assert_eq!(
        h.rpc("files/get_metadata", json!({"path": "/d.txt"}))
            .await
            .status,
        409,
        "not applied"
    );

    let cut = h
        .http
        .post(h.url("files/create_folder_v2"))
        .bearer_auth(&h.token)
        .header("Content-Type", "application/json")
        .body(r#"{"path":"/after"}"#)
        .send()
        .await;
    assert!(cut.is_err(), "no response after applying");
    assert_eq!(
        h.rpc("files/get_metadata", json!({"path": "/after"}))
            .await
            .status,
        200,
        "applied"
    );

    let stats = h.hook(reqwest::Method::GET, "stats", None).await;
    assert_eq!(stats["requests"]["files/get_metadata"], 5);
    assert_eq!(stats["requests"]["files/upload"], 1);
    h.hook(reqwest::Method::DELETE, "stats", None).await;
    let stats = h.hook(reqwest::Method::GET, "stats", None).await;
    assert_eq!(stats["requests"], json!({}));

    h.hook(
        reqwest::Method::POST,
        "faults",
        Some(json!({"rules": [{"kind": "expired_token"}]})),
    )
    .await;
    assert_eq!(
        h.rpc("files/get_metadata", json!({"path": "/x"}))
            .await
            .summary(),
        "expired_access_token/.."
    );
    h.hook(reqwest::Method::DELETE, "faults", None).await;
    assert_eq!(
        h.rpc("files/get_metadata", json!({"path": "/x"}))
            .await
            .status,
        409
    );
}

#[tokio::test]
async fn http2_prior_knowledge_is_served() {
    let h = start().await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .post(h.url("users/get_current_account"))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
}
