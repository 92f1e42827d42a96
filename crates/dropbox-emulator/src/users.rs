//! users/get_current_account and users/get_space_usage.
//!
//! FullAccount and SpaceUsage shaped as users.stone defines them: a team member gets
//! `account_type` business, the `team` (FullTeam), its `team_member_id` and a TeamRootInfo; a
//! personal account gets basic and a UserRootInfo. Space used is what the account stores.

use serde_json::{json, Value};

use super::accounts::Person;
use super::caller::{Caller, Identity};
use super::error::ApiResult;
use super::paths::lower_key;
use super::server::AppState;

/// users.Name from given name and surname.
pub fn name_json(person: &Person) -> Value {
    let initial = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    json!({
        "given_name": person.given_name,
        "surname": person.surname,
        "familiar_name": person.given_name,
        "display_name": format!("{} {}", person.given_name, person.surname),
        "abbreviated_name": format!("{}{}", initial(&person.given_name), initial(&person.surname)),
    })
}

fn person(identity: &Identity) -> &Person {
    match identity {
        Identity::Personal(account) => &account.person,
        Identity::Member { member, .. } => &member.person,
    }
}

pub fn get_current_account(_state: &AppState, caller: &Caller) -> ApiResult<Value> {
    let identity = &caller.identity;
    let person = person(identity);
    let mut account = json!({
        "account_id": person.account_id,
        "name": name_json(person),
        "email": person.email,
        "email_verified": true,
        "disabled": false,
        "country": person.country,
        "locale": person.locale,
        "referral_link": "https://db.tt/emulator",
        "is_paired": false,
        "account_type": { ".tag": "basic" },
        "root_info": identity.root_info(),
    });
    if let Identity::Member { team, member } = identity {
        account["account_type"] = json!({ ".tag": "business" });
        account["team_member_id"] = json!(member.team_member_id);
        account["team"] = json!({
            "id": team.team_id,
            "name": team.name,
            "sharing_policies": {
                "shared_folder_member_policy": { ".tag": "anyone" },
                "shared_folder_join_policy": { ".tag": "from_anyone" },
                "shared_link_create_policy": { ".tag": "default_public" },
                "group_creation_policy": { ".tag": "admins_and_members" },
                "shared_folder_link_restriction_policy": { ".tag": "anyone" },
                "enforce_link_password_policy": { ".tag": "optional" },
                "default_link_expiration_days_policy": { ".tag": "none" },
                "shared_link_default_permissions_policy": { ".tag": "default" },
            },
            "office_addin_policy": { ".tag": "disabled" },
            "top_level_content_policy": { ".tag": "everyone" },
        });
    }
    Ok(account)
}

pub fn get_space_usage(state: &AppState, caller: &Caller) -> ApiResult<Value> {
    let store = state.store();
    match &caller.identity {
        Identity::Personal(account) => {
            let used = store.used_bytes(&account.home_namespace_id, "");
            Ok(json!({
                "used": used,
                "allocation": { ".tag": "individual", "allocated": account.allocated_bytes },
            }))
        }
        Identity::Member { team, member } => {
            let tree = &team.root_namespace_id;
            let member_used =
                store.used_bytes(tree, &lower_key(std::slice::from_ref(&member.home_folder)));
            let team_used = store.used_bytes(tree, "");
            Ok(json!({
                "used": member_used,
                "allocation": {
                    ".tag": "team",
                    "used": team_used,
                    "allocated": team.allocated_bytes,
                    "user_within_team_space_allocated": 0,
                    "user_within_team_space_limit_type": { ".tag": "off" },
                    "user_within_team_space_used_cached": member_used,
                },
            }))
        }
    }
}
