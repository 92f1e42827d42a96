//! team/members/get_info_v2: look team members up by email, team_member_id or external id.
//!
//! Results are MembersGetInfoItemV2 unions: `member_info` inlines a TeamMemberInfoV2 struct
//! beside its tag (`{".tag":"member_info","profile":{...}}`), `id_not_found` carries the id
//! that matched nobody.

use serde::Deserialize;
use serde_json::{json, Value};

use super::accounts::{Member, Team};
use super::users::name_json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetInfoArg {
    members: Vec<UserSelector>,
}

/// team.UserSelectorArg.
#[derive(Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum UserSelector {
    TeamMemberId { team_member_id: String },
    ExternalId { external_id: String },
    Email { email: String },
}

impl UserSelector {
    fn id(&self) -> &str {
        match self {
            UserSelector::TeamMemberId { team_member_id } => team_member_id,
            UserSelector::ExternalId { external_id } => external_id,
            UserSelector::Email { email } => email,
        }
    }

    fn matches(&self, member: &Member) -> bool {
        match self {
            UserSelector::TeamMemberId { team_member_id } => {
                member.team_member_id == *team_member_id
            }
            UserSelector::ExternalId { .. } => false,
            UserSelector::Email { email } => member.person.email.eq_ignore_ascii_case(email),
        }
    }
}

pub fn members_get_info(team: &Team, arg: GetInfoArg) -> Value {
    let members_info: Vec<Value> = arg
        .members
        .iter()
        .map(
            |selector| match team.members.iter().find(|m| selector.matches(m)) {
                Some(member) => json!({
                    ".tag": "member_info",
                    "profile": profile(team, member),
                    "roles": [],
                }),
                None => json!({ ".tag": "id_not_found", "id_not_found": selector.id() }),
            },
        )
        .collect();
    json!({ "members_info": members_info })
}

/// team.TeamMemberProfile.
fn profile(team: &Team, member: &Member) -> Value {
    json!({
        "team_member_id": member.team_member_id,
        "account_id": member.person.account_id,
        "email": member.person.email,
        "email_verified": true,
        "secondary_emails": [],
        "status": { ".tag": "active" },
        "name": name_json(&member.person),
        "membership_type": { ".tag": "full" },
        "joined_on": "2024-01-01T00:00:00Z",
        "groups": [],
        "member_folder_id": member.home_namespace_id,
        "root_folder_id": team.root_namespace_id,
    })
}
