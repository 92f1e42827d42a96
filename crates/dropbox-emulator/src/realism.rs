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
use super::rate_limit::RateLimit;
use super::server::AppState;
use super::write_lock::WriteLock;

/// Which models of real Dropbox behaviour are on, and how they are tuned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Realism {
    /// Upload sessions expire this long after their start (Dropbox: 7 days, the default);
    /// an expired session is `not_found`.
    pub session_lifetime_secs: Option<u64>,
    /// For this many milliseconds after it is written, an entry is `not_found` by path to
    /// get_metadata, move, copy and delete (the `lag` model).
    pub lag_ms: Option<u64>,
    /// Overlapping commits in one namespace: the later is refused (`write_lock`).
    pub write_lock: Option<WriteLock>,
    /// A budget of calls per user over every route; 429 with `Retry-After` once it is spent
    /// ([`RateLimit`]).
    pub rate_limit: Option<RateLimit>,
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
    /// Every model off, but far away: 40 ms per answer, 25 MB/s per connection
    /// ([`Distance::wan`](crate::Distance::wan)).
    Wan,
}

impl Realism {
    pub fn of_profile(profile: Profile) -> Realism {
        match profile {
            Profile::Plain | Profile::Wan => Realism::default(),
            Profile::Realistic => Realism::realistic(),
        }
    }

    /// All models on, tuned so that tests stay quick (delays of a second or two).
    pub fn realistic() -> Realism {
        Realism {
            // Long enough for any upload a suite makes, short enough to be met by a soak.
            session_lifetime_secs: Some(3600),
            lag_ms: Some(300),
            write_lock: Some(WriteLock::default()),
            // Generous enough that a test's ordinary traffic rarely meets it; a burst does.
            rate_limit: Some(RateLimit {
                burst: 200,
                per_second: 100.0,
                retry_after_secs: 1,
            }),
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
