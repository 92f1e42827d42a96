//! TEMPORARY stand-in (replaced by the `control` branch at merge).
#![allow(dead_code, unused_variables)]
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::admin::settings::AdminConfig;
use crate::audit_log::AuditLog;
use crate::config::{AccountConfig, ServerConfig};
use crate::gateway::reload::Reloaded;
use crate::ssh::guard::AddressGuard;

#[derive(Clone)]
pub struct Control {
    pub(crate) guard: Arc<AddressGuard>,
    pub(crate) audit: AuditLog,
    pub(crate) server: ServerConfig,
    pub(crate) admin: AdminConfig,
}

#[derive(Debug, Clone)]
pub struct AccountStatus {
    pub name: String,
    pub connected: bool,
    pub email: Option<String>,
    pub account_id: Option<String>,
    pub team: bool,
    pub team_member_email: Option<String>,
    pub team_member_id: Option<String>,
    pub team_space_root: Option<String>,
    pub token_file: Option<PathBuf>,
    pub granted_scopes: Option<String>,
    pub token_expires_at: Option<SystemTime>,
    pub last_error: Option<String>,
    pub last_error_at: Option<SystemTime>,
    pub last_ok_at: Option<SystemTime>,
    pub users: Vec<String>,
    pub credentials_in_config: bool,
}

#[derive(Debug, Clone)]
pub struct UserSummary {
    pub name: String,
    pub account: String,
    pub dropbox_root: String,
    pub permissions: String,
    pub key_fingerprints: Vec<String>,
    pub password: bool,
    pub allowed_networks: String,
}

impl Control {
    pub fn accounts(&self) -> Vec<AccountStatus> {
        Vec::new()
    }
    pub fn account_config(&self, name: &str) -> Option<AccountConfig> {
        None
    }
    pub async fn connect_account(&self, account: AccountConfig) -> anyhow::Result<AccountStatus> {
        anyhow::bail!("stand-in")
    }
    pub fn users(&self) -> Vec<UserSummary> {
        Vec::new()
    }
    pub fn reload(&self) -> anyhow::Result<Reloaded> {
        anyhow::bail!("stand-in")
    }
    pub fn guard(&self) -> Arc<AddressGuard> {
        self.guard.clone()
    }
    pub fn audit(&self) -> AuditLog {
        self.audit.clone()
    }
    pub fn server_config(&self) -> ServerConfig {
        self.server.clone()
    }
    pub fn admin_config(&self) -> AdminConfig {
        self.admin.clone()
    }
}

impl super::Gateway {
    pub fn control(&self) -> Control {
        Control {
            guard: AddressGuard::new(self.context.limits.clone()),
            audit: self.context.audit.clone(),
            server: toml::from_str("listen = \"127.0.0.1:1\"").unwrap(),
            admin: AdminConfig::default(),
        }
    }
}
