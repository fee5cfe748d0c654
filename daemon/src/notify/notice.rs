//! Which events notify, and what each notification says: the one place
//! that decides both.
//!
//! A notification's JSON is the event as the event stream sends it (tagged
//! by `"event"`), with these fields added: `node` (this node's feed),
//! `time_ms` (when it was sent), `summary` (the subject line's words), and,
//! for a recovery request this node has a record of, `role` (`custodian`,
//! `owner`, `recipient`, ...) and `state`, plus `veto_ends_ms` while its veto
//! window is open. If the stream falls behind, one
//! `{"event":"lagged","missed":N}` notification says so.

use serde_json::{Map, Value, json};
use sherd_api::Event;
use sherd_protocol::FeedId;

use super::Selection;
use crate::engine::records::{RequestRecord, RequestState, Role};

/// Every event name a config may select: the event stream's, and `lagged`
/// (the notifier missed events).
pub const ALL_KINDS: &[&str] = &[
    "request_received",
    "release_due",
    "shard_released",
    "request_denied",
    "recovery_complete",
    "recovery_failed",
    "shard_erased",
    "revoke_acked",
    "grant_received",
    "peer_blocked",
    "lagged",
    "rate_limited",
    "custodian_silent",
    "proof_received",
    "recovery_progress",
    "backup_created",
    "ack_received",
    "shard_held",
    "refused",
    "contact_added",
    "contact_removed",
    "peer_connected",
    "peer_disconnected",
    "entry_stored",
];

/// What notifies unless the config says otherwise: what a person must act
/// on (a request to decide, a veto window open, a release waiting for
/// approval) or should know of (vetoes and denials, releases, recoveries
/// complete or failed, revocations, grants, peers blocked, missed events).
/// The rest is the node's own business: connections, entries, acks.
pub const DEFAULT_KINDS: &[&str] = &[
    "request_received",
    "release_due",
    "shard_released",
    "request_denied",
    "recovery_complete",
    "recovery_failed",
    "shard_erased",
    "revoke_acked",
    "grant_received",
    "peer_blocked",
    "lagged",
    "rate_limited",
    "custodian_silent",
];

/// One notification, ready for every notifier.
#[derive(Debug, Clone)]
pub(super) struct Notice {
    /// The event's name, as selected in the config.
    pub(super) kind: String,
    /// The subject line, in plain words ("sherd: ...").
    pub(super) subject: String,
    /// A few sentences in plain words: what happened, what to do.
    pub(super) text: String,
    /// The JSON object (see the module doc).
    pub(super) json: Value,
}

impl Notice {
    /// The notification for `event`, if `selection` wants its kind. `request`
    /// is this node's record of the request a `request_received` names, if
    /// it has one: it says the node's part and the veto window.
    pub(super) fn of_event(
        event: &Event,
        selection: &Selection,
        node: &FeedId,
        now_ms: u64,
        request: Option<&RequestRecord>,
    ) -> Option<Self> {
        let Ok(Value::Object(mut json)) = serde_json::to_value(event) else {
            return None;
        };
        let kind = json.get("event")?.as_str()?.to_owned();
        if !selection.wants(&kind) {
            return None;
        }
        let (headline, text) = words(event, node, now_ms, request, &mut json);
        Some(Self::new(kind, headline, text, json, node, now_ms))
    }

    /// The one notification that says the notifier missed `missed` events.
    pub(super) fn missed(
        missed: u64,
        selection: &Selection,
        node: &FeedId,
        now_ms: u64,
    ) -> Option<Self> {
        if !selection.wants("lagged") {
            return None;
        }
        let Value::Object(json) = json!({ "event": "lagged", "missed": missed }) else {
            return None;
        };
        let headline = if missed == 1 {
            "1 event missed".to_owned()
        } else {
            format!("{missed} events missed")
        };
        let text = format!(
            "The notifier fell behind the node's event stream and missed {missed} events, \
             so some notifications were not sent. `sherdctl requests`, `sherdctl backup list` \
             and `sherdctl audit` show where things stand."
        );
        Some(Self::new(
            "lagged".into(),
            headline,
            text,
            json,
            node,
            now_ms,
        ))
    }

    fn new(
        kind: String,
        headline: String,
        text: String,
        mut json: Map<String, Value>,
        node: &FeedId,
        now_ms: u64,
    ) -> Self {
        // The event's own fields win: an added field never hides one.
        for (key, value) in [
            ("node", json!(node.to_string())),
            ("time_ms", json!(now_ms)),
            ("summary", json!(headline)),
        ] {
            json.entry(key).or_insert(value);
        }
        Self {
            kind,
            subject: format!("sherd: {headline}"),
            text,
            json: Value::Object(json),
        }
    }

    /// The JSON as a command reads it: one object on one line.
    pub(super) fn json_line(&self) -> Vec<u8> {
        let mut line = self.json.to_string().into_bytes();
        line.push(b'\n');
        line
    }

    /// The mail body: the words, then the JSON.
    pub(super) fn mail_body(&self) -> String {
        let pretty =
            serde_json::to_string_pretty(&self.json).unwrap_or_else(|_| self.json.to_string());
        format!(
            "{}\n\n{}\n\nThe event, as JSON:\n\n{pretty}\n\n-- \nsherdd, node {}\n",
            self.subject.trim_start_matches("sherd: "),
            wrap(&self.text, 72),
            self.json.get("node").and_then(Value::as_str).unwrap_or("")
        )
    }
}

/// `text` broken into lines of at most `width` characters at spaces (a
/// longer word stays whole), as plain-text mail is read.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / width);
    let mut line_len = 0;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let len = word.chars().count();
        if line_len > 0 && line_len + 1 + len > width {
            out.push('\n');
            line_len = 0;
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += len;
    }
    out
}

/// The headline (the subject without "sherd: ") and the sentences for
/// `event`; adds what a request's record says to `json`.
fn words(
    event: &Event,
    node: &FeedId,
    now_ms: u64,
    record: Option<&RequestRecord>,
    json: &mut Map<String, Value>,
) -> (String, String) {
    match event {
        Event::RequestReceived {
            request: id,
            kind,
            backup,
            requester,
            recipient,
        } => {
            if let Some(record) = record {
                json.entry("role").or_insert(role_name(record.role));
                json.entry("state").or_insert(json!(record.state.name()));
                if let RequestState::Waiting { release_at_ms } = record.state {
                    json.entry("veto_ends_ms").or_insert(json!(release_at_ms));
                }
            }
            request_words(id, kind, backup, requester, recipient, record, now_ms)
        }
        Event::ReleaseDue { request, backup } => (
            "an emergency release waits for your approval".into(),
            format!(
                "The veto window of emergency request {request} (backup {backup}) closed and \
                 the owner did not veto. Release your shard to the trustee with \
                 `sherdctl approve {request}`, or refuse with `sherdctl deny {request}`."
            ),
        ),
        Event::ShardReleased {
            request,
            backup,
            recipient,
        } => (
            "your shard was released".into(),
            format!(
                "This node released its shard of backup {backup} to {recipient}, for request \
                 {request}. A shard goes out at most once per request."
            ),
        ),
        Event::RequestDenied {
            request,
            backup,
            by,
        } => {
            let who = if *by == node.to_string() {
                "This node".to_owned()
            } else {
                by.clone()
            };
            (
                "a recovery request was denied".into(),
                format!(
                    "{who} denied request {request} for backup {backup}. When the backup's owner \
                     denies a trustee's request, that is a veto: no custodian releases for it."
                ),
            )
        }
        Event::RecoveryComplete { backup } => (
            "a recovery is complete".into(),
            format!(
                "Enough shards of backup {backup} arrived: the secret is rebuilt in this node's \
                 memory and can be taken once, with `sherdctl recover {backup} --output FILE`."
            ),
        ),
        Event::RecoveryFailed { backup, reason } => (
            "a recovery failed".into(),
            format!("The recovery of backup {backup} failed for good: {reason}."),
        ),
        Event::ShardErased { backup, owner } => (
            "a shard you held was erased".into(),
            format!(
                "Backup {backup} of {owner} was revoked by its owner, or used up by a trustee \
                 (one-time access), so this node erased its shard of it. `sherdctl audit` says \
                 which."
            ),
        ),
        Event::RateLimited {
            backup,
            requester,
            request,
        } => (
            "a requester asked too often".into(),
            format!(
                "{requester} sent more recovery requests for backup {backup} than this node \
                 takes in a day; request {request} was ignored."
            ),
        ),
        Event::CustodianSilent {
            backup,
            custodian,
            last_heard_ms,
        } => (
            "a custodian has gone silent".into(),
            format!(
                "Custodian {custodian} of your backup {backup} has not proved it still holds \
                 its shard for {}. If it does not come back, re-share the backup without it: \
                 `sherdctl backup reshare {backup} --custodian ... --threshold T`.",
                span(now_ms.saturating_sub(*last_heard_ms) / 1000)
            ),
        ),
        Event::ProofReceived {
            backup,
            custodian,
            good,
            back_from_silence,
        } => (
            match (good, back_from_silence) {
                (false, _) => "a custodian's health proof was wrong".into(),
                (true, true) => "a silent custodian is back".into(),
                (true, false) => "a custodian proved its shard".into(),
            },
            if *good {
                format!("Custodian {custodian} proved it still holds its shard of backup {backup}.")
            } else {
                format!(
                    "Custodian {custodian} answered the health check of backup {backup} with a \
                     proof that does not match its shard."
                )
            },
        ),
        Event::RevokeAcked {
            backup,
            custodian,
            erased,
            custodians,
        } => (
            format!("a custodian erased its shard ({erased} of {custodians})"),
            format!(
                "Custodian {custodian} erased its shard of your revoked backup {backup}: \
                 {erased} of {custodians} custodians have. `sherdctl backup show {backup}` \
                 lists who has."
            ),
        ),
        Event::GrantReceived { backup, owner } => (
            "you were granted emergency access".into(),
            format!(
                "{owner} named this node a trustee of backup {backup}. In an emergency you may \
                 ask for it with `sherdctl request-recovery {backup}`; the owner is told and may \
                 veto. `sherdctl grants` lists what you may ask for."
            ),
        ),
        Event::PeerBlocked {
            peer,
            duration_secs,
        } => (
            "a peer was blocked".into(),
            format!(
                "Peer {peer} sent invalid data too often: this node refuses it for {}.",
                span(*duration_secs)
            ),
        ),
        Event::RecoveryProgress {
            backup,
            shards,
            threshold,
        } => (
            format!("a recovery took a shard ({shards} of {threshold})"),
            format!(
                "The recovery of backup {backup} has {shards} of the {threshold} shards it needs."
            ),
        ),
        Event::Refused {
            what,
            peer,
            entry,
            reason,
        } => (
            format!("a {what} was refused"),
            format!("This node refused the {what} in entry {entry} from {peer}: {reason}."),
        ),
        _ => {
            let kind = json
                .get("event")
                .and_then(Value::as_str)
                .unwrap_or("event")
                .replace('_', " ");
            (
                kind.clone(),
                format!("The node reports: {kind}. The event is below."),
            )
        }
    }
}

/// A recovery request, in the words of this node's part in it.
fn request_words(
    id: &str,
    kind: &str,
    backup: &str,
    requester: &str,
    recipient: &str,
    record: Option<&RequestRecord>,
    now_ms: u64,
) -> (String, String) {
    let decide = format!(
        "Release your shard with `sherdctl approve {id}`, or refuse with `sherdctl deny {id}`."
    );
    let Some(record) = record else {
        return (
            "a recovery request arrived".into(),
            format!(
                "{requester} made {kind} request {id} for backup {backup}, for {recipient}. \
                 `sherdctl requests` shows it."
            ),
        );
    };
    let owner = record.owner;
    match (record.role, &record.state) {
        (Role::Owner, RequestState::Waiting { release_at_ms }) => (
            format!(
                "a trustee asks for your backup; veto it before {}",
                utc(*release_at_ms)
            ),
            format!(
                "Trustee {requester} asked for emergency access to your backup {backup}. Unless \
                 you veto, your custodians release their shards to it from {} ({} from now). \
                 If you are fine, veto with `sherdctl deny {id}`; to let it through at once, \
                 `sherdctl approve {id}`.",
                utc(*release_at_ms),
                span(release_at_ms.saturating_sub(now_ms) / 1000)
            ),
        ),
        (Role::Custodian, RequestState::Waiting { release_at_ms }) => (
            format!(
                "an emergency request's veto window runs until {}",
                utc(*release_at_ms)
            ),
            format!(
                "Trustee {requester} asks for backup {backup} of {owner}, of which this node \
                 holds a shard. Nothing is released before {}, and the owner may veto until \
                 then; you will be told when the window closes.",
                utc(*release_at_ms)
            ),
        ),
        (Role::Custodian, RequestState::Pending) if kind == "emergency" => (
            "an emergency request waits for your approval".into(),
            format!(
                "Trustee {requester} asks for backup {backup} of {owner}, with no veto window \
                 left (none in the policy, or the owner approved it). {decide}"
            ),
        ),
        (Role::Custodian, RequestState::Pending) => (
            "a recovery request waits for your approval".into(),
            format!(
                "{requester} asks for your shard of backup {backup} of {owner}, to go to \
                 {recipient} ({kind} request {id}). Check that the request is genuine before \
                 you approve. {decide}"
            ),
        ),
        (Role::Custodian, RequestState::Released { .. }) => (
            "a recovery request was approved automatically".into(),
            format!(
                "{requester} asked for your shard of backup {backup} of {owner}, and this node \
                 trusts that contact's requests: the shard went to {recipient}."
            ),
        ),
        (Role::Custodian, RequestState::Vetoed) => (
            "an emergency request arrived, vetoed already".into(),
            format!(
                "Trustee {requester} asked for backup {backup} of {owner}; the owner had vetoed \
                 it already, so nothing is released."
            ),
        ),
        (Role::Recipient, _) => (
            "a recovery toward this node started".into(),
            format!(
                "Custodian {requester} started recovering backup {backup} of {owner} toward \
                 this node. Once enough custodians forward their shards, \
                 `sherdctl recover {backup} --output FILE` gives you the secret."
            ),
        ),
        (_, state) => (
            "a recovery request arrived".into(),
            format!(
                "{requester} made {kind} request {id} for backup {backup}, for {recipient}; \
                 it is {}. `sherdctl requests` shows it.",
                state.name()
            ),
        ),
    }
}

/// The role's name as the record spells it (`custodian`, `owner`, ...).
fn role_name(role: Role) -> Value {
    serde_json::to_value(role).unwrap_or(Value::Null)
}

/// A time as people read it: `2026-11-26 19:33 UTC`.
pub(super) fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let minute = secs % 86_400 / 60;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minute / 60,
        minute % 60
    )
}

/// The date `days` after 1970-01-01, in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// A duration in words, rounded: "3 days", "72 hours", "10 minutes".
pub(super) fn span(secs: u64) -> String {
    let (n, unit) = match secs {
        s if s >= 4 * 86_400 => ((s + 43_200) / 86_400, "day"),
        s if s >= 2 * 3_600 => ((s + 1_800) / 3_600, "hour"),
        s if s >= 2 * 60 => ((s + 30) / 60, "minute"),
        s => (s, "second"),
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}
