//! The activity page: live connections, transfers in progress, and the latest audit events.
//!
//! The live part is one HTML fragment, rendered here both into the page and for its script,
//! which fetches it again every second (`/activity/live`), so there is one renderer and the
//! page works, minus the updates, with scripts off.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::extract::SignedIn;
use super::html::{self, escape, Nav};
use super::Admin;
use crate::activity::ActivitySnapshot;
use crate::audit_log::AuditEvent;
use crate::transfers::{Direction, LiveTransfer};

/// GET /activity.
pub async fn page(State(admin): State<Arc<Admin>>, session: SignedIn) -> Response {
    let live = fragment(&admin.activity.snapshot(), SystemTime::now());
    let body = format!(
        "<h1>Activity</h1>{}<p class=\"muted\" id=\"live-status\">as of page load</p>\
         <div id=\"live\" data-source=\"/activity/live\">{live}</div>",
        session.flash_html()
    );
    Html(html::page(
        "Activity",
        Nav::Activity,
        &session.viewer(),
        &body,
    ))
    .into_response()
}

/// GET /activity/live: the live part alone (401 when signed out, so the script can tell).
pub async fn live(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> Response {
    if admin.signed_in(&headers).is_none() {
        return (StatusCode::UNAUTHORIZED, "sign in again").into_response();
    }
    Html(fragment(&admin.activity.snapshot(), SystemTime::now())).into_response()
}

fn fragment(snapshot: &ActivitySnapshot, now: SystemTime) -> String {
    format!(
        "{}{}{}",
        transfers(&snapshot.transfers, now),
        connections(snapshot, now),
        recent(&snapshot.recent)
    )
}

fn transfers(transfers: &[LiveTransfer], now: SystemTime) -> String {
    let mut rows = String::new();
    for transfer in transfers {
        let kind = match transfer.direction {
            Direction::Upload => "upload",
            Direction::Download => "download",
        };
        let state = transfer.state.as_str();
        let so_far = match transfer.size {
            Some(size) if size > 0 => format!(
                "{} of {} ({}%)",
                html::bytes(transfer.bytes),
                html::bytes(size),
                transfer.bytes.saturating_mul(100) / size
            ),
            _ => html::bytes(transfer.bytes),
        };
        rows.push_str(&format!(
            "<tr class=\"transfer\" data-state=\"{state}\"><td>{user}</td><td>{kind}</td>\
             <td class=\"mono\">{path}</td><td><span class=\"badge ok\">{state}</span></td>\
             <td class=\"bytes\">{so_far}</td><td>{rate}/s</td><td class=\"wide\">{since}</td></tr>",
            user = escape(&transfer.user),
            path = escape(&transfer.path),
            rate = html::bytes(transfer.rate),
            since = html::relative(transfer.started, now),
        ));
    }
    if transfers.is_empty() {
        rows.push_str("<tr><td colspan=\"7\" class=\"muted\">No transfer in progress.</td></tr>");
    }
    format!(
        "<h2>Transfers in progress</h2><div class=\"table\"><table id=\"transfers\"><thead><tr>\
         <th>User</th><th>Kind</th><th>Path</th><th>State</th><th>So far</th><th>Rate</th>\
         <th class=\"wide\">Started</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
}

fn connections(snapshot: &ActivitySnapshot, now: SystemTime) -> String {
    let mut rows = String::new();
    for connection in &snapshot.connections {
        rows.push_str(&format!(
            "<tr class=\"connection\"><td>{user}</td><td class=\"mono\">{remote}</td>\
             <td class=\"mono wide\">{client}</td><td>{since}</td></tr>",
            user = match &connection.user {
                Some(user) => escape(user),
                None => "<span class=\"muted\">not logged in</span>".to_string(),
            },
            remote = escape(&connection.remote),
            client = escape(connection.client_version.as_deref().unwrap_or("")),
            since = html::relative(connection.since, now),
        ));
    }
    if snapshot.connections.is_empty() {
        rows.push_str("<tr><td colspan=\"4\" class=\"muted\">Nobody is connected.</td></tr>");
    }
    format!(
        "<h2>Connections</h2><div class=\"table\"><table id=\"connections\"><thead><tr>\
         <th>User</th><th>From</th><th class=\"wide\">Client</th><th>Since</th></tr></thead>\
         <tbody>{rows}</tbody></table></div>"
    )
}

fn recent(events: &[AuditEvent]) -> String {
    let mut rows = String::new();
    for event in events {
        let what = match (event.event, event.op) {
            ("operation", Some(op)) | ("admin", Some(op)) => format!("{} {op}", event.event),
            (kind, _) => kind.to_string(),
        };
        let subject = event
            .path
            .as_deref()
            .or(event.account.as_deref())
            .unwrap_or("");
        let result = event.result.unwrap_or("");
        let class = match result {
            "ok" => "ok",
            "" => "",
            _ => "bad",
        };
        let detail = match (&event.error, event.bytes) {
            (Some(error), _) => escape(error),
            (None, Some(bytes)) => html::bytes(bytes),
            (None, None) => String::new(),
        };
        rows.push_str(&format!(
            "<tr class=\"event\" data-result=\"{result}\"><td class=\"mono wide\">{time}</td>\
             <td>{user}</td><td>{what}</td><td class=\"mono\">{subject}</td>\
             <td><span class=\"badge {class}\">{result}</span></td><td>{detail}</td></tr>",
            time = escape(&event.time),
            user = escape(event.user.as_deref().unwrap_or("")),
            subject = escape(subject),
        ));
    }
    if events.is_empty() {
        rows.push_str("<tr><td colspan=\"6\" class=\"muted\">Nothing yet.</td></tr>");
    }
    format!(
        "<h2>Recent events</h2><div class=\"table\"><table id=\"events\"><thead><tr>\
         <th class=\"wide\">Time</th><th>User</th><th>Event</th><th>Path or account</th>\
         <th>Result</th><th>Detail</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
}
