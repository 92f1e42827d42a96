//! The rate-limit model over real sockets: a burst beyond the budget is refused as Dropbox
//! refuses it, only for the caller who overdrew, and only until the announced wait is over.

use std::time::Duration;

use serde_json::{json, Value};

use super::{demo, start, Answer, Harness};

/// Three calls at once, two more a second; an overdraft is refused for one second.
async fn limited(h: &Harness) {
    let realism = json!({"rate_limit": {"burst": 3, "per_second": 2.0, "retry_after_secs": 1}});
    h.hook(reqwest::Method::PUT, "realism", Some(realism)).await;
}

/// `users/get_current_account` as the personal account.
async fn personal(h: &Harness) -> Answer {
    h.rpc("users/get_current_account", Value::Null).await
}

/// `users/get_current_account` as a team member, through the team token.
async fn member(h: &Harness, team_member_id: &str) -> Answer {
    let response = h
        .http
        .post(h.url("users/get_current_account"))
        .bearer_auth(demo::TEAM_ACCESS_TOKEN)
        .header("Dropbox-API-Select-User", team_member_id)
        .header("Content-Type", "application/json")
        .body("null")
        .send()
        .await
        .unwrap();
    Answer::from(response).await
}

fn assert_rate_limited(answer: &Answer) {
    assert_eq!(answer.status, 429, "{:?}", answer.body);
    assert_eq!(answer.headers["retry-after"], "1");
    assert_eq!(
        answer.body,
        json!({
            "error_summary": "too_many_requests/..",
            "error": {"reason": {".tag": "too_many_requests"}, "retry_after": 1},
        })
    );
}

#[tokio::test]
async fn a_burst_beyond_the_budget_is_refused_with_retry_after_until_the_wait_is_over() {
    let h = start().await;
    limited(&h).await;
    for _ in 0..3 {
        assert_eq!(personal(&h).await.status, 200);
    }
    assert_rate_limited(&personal(&h).await);
    // Refused again while penalised, on any route.
    let upload = h.upload("/x.txt", b"x").await;
    assert_eq!(upload.status, 429, "{:?}", upload.body);
    assert!(
        h.rpc("files/get_metadata", json!({"path": "/x.txt"}))
            .await
            .status
            == 429
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(personal(&h).await.status, 200);
    assert_eq!(h.upload("/x.txt", b"x").await.status, 200);
}

#[tokio::test]
async fn other_users_and_team_members_keep_their_own_budget() {
    let h = start().await;
    limited(&h).await;
    for _ in 0..3 {
        assert_eq!(personal(&h).await.status, 200);
    }
    assert_rate_limited(&personal(&h).await);
    assert_eq!(member(&h, demo::ALICE_TEAM_MEMBER_ID).await.status, 200);

    for _ in 0..2 {
        assert_eq!(member(&h, demo::ALICE_TEAM_MEMBER_ID).await.status, 200);
    }
    assert_rate_limited(&member(&h, demo::ALICE_TEAM_MEMBER_ID).await);
    assert_eq!(member(&h, demo::BOB_TEAM_MEMBER_ID).await.status, 200);
}

#[tokio::test]
async fn off_by_default_and_off_again_when_the_model_is_removed() {
    let h = start().await;
    for _ in 0..20 {
        assert_eq!(personal(&h).await.status, 200);
    }
    limited(&h).await;
    for _ in 0..3 {
        personal(&h).await;
    }
    assert_eq!(personal(&h).await.status, 429);
    h.hook(reqwest::Method::PUT, "realism", Some(json!({})))
        .await;
    assert_eq!(personal(&h).await.status, 200);
}
