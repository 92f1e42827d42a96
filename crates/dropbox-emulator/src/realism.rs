//! How much of real Dropbox's unkindness the emulator shows: rate limits, namespace write
//! contention, lag after a commit, name rules, session expiry.
//!
//! Every model is off by default, so the plain demo and most tests see a patient, immediate
//! Dropbox. Each model is one optional field of [`Realism`]; `--realism JSON` (or
//! `--profile realistic`) sets them at start, and `PUT /__emulator/realism` replaces them at run
//! time (`GET` shows them), so a test can turn a model on around one step. The models
//! themselves live in their own modules; this file only says which are on.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::non_bmp_names::RefuseNonBmpNames;
use super::server::AppState;

/// Which models of real Dropbox behaviour are on, and how they are tuned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Realism {
    /// Names with characters beyond U+FFFF (emoji) are refused as `malformed_path`
    /// (the model is in the module `non_bmp_names`).
    pub refuse_non_bmp_names: Option<RefuseNonBmpNames>,
}

/// The named profiles of `--profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Every model off: a patient, immediate Dropbox (the default).
    Plain,
    /// Every model on, with short delays: what a test suite can run under.
    Realistic,
}

impl Realism {
    pub fn of_profile(profile: Profile) -> Realism {
        match profile {
            Profile::Plain => Realism::default(),
            Profile::Realistic => Realism::realistic(),
        }
    }

    /// All models on, tuned so that tests stay quick (delays of a second or two).
    pub fn realistic() -> Realism {
        Realism {
            refuse_non_bmp_names: Some(RefuseNonBmpNames {}),
        }
    }
}

/// The models in force, shared by the handlers; read once per request.
#[derive(Default)]
pub struct RealismSwitch {
    current: Mutex<Realism>,
}

impl RealismSwitch {
    pub fn new(realism: Realism) -> Self {
        Self {
            current: Mutex::new(realism),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Realism> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the models in force now.
    pub fn get(&self) -> Realism {
        self.lock().clone()
    }

    pub fn set(&self, realism: Realism) {
        *self.lock() = realism;
    }
}

pub async fn get_realism(State(state): State<Arc<AppState>>) -> Response {
    Json(state.realism.get()).into_response()
}

pub async fn put_realism(
    State(state): State<Arc<AppState>>,
    Json(realism): Json<Realism>,
) -> Response {
    state.realism.set(realism);
    Json(json!({})).into_response()
}
