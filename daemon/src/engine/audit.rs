//! The engine's audit lines: one JSON object per step, appended to the
//! store's audit log in the same transaction as the step's other effects.
//!
//! A line names the event, the backup, the peer (feed), the entry and the
//! request concerned, the result and, for a refusal, the reason. It never holds
//! plaintext, a label, a share or any key: only ids and our own words.

use serde::Serialize;
use sherd_protocol::{BackupId, EntryId, FeedId, RequestId};

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Outcome {
    /// Done as the protocol asks.
    Ok,
    /// Refused: the input breaks a rule.
    Refused,
    /// Not acted on: nothing wrong enough to refuse, nothing to do.
    Ignored,
}

/// One audit line, built up field by field.
#[derive(Debug, Clone, Serialize)]
pub(super) struct AuditLine {
    time_ms: u64,
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup: Option<BackupId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<FeedId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entry: Option<EntryId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<RequestId>,
    result: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl AuditLine {
    pub(super) fn new(time_ms: u64, event: &'static str, result: Outcome) -> Self {
        Self {
            time_ms,
            event,
            backup: None,
            peer: None,
            entry: None,
            request: None,
            result,
            reason: None,
        }
    }

    pub(super) fn backup(mut self, backup: BackupId) -> Self {
        self.backup = Some(backup);
        self
    }

    pub(super) fn peer(mut self, peer: FeedId) -> Self {
        self.peer = Some(peer);
        self
    }

    pub(super) fn entry(mut self, entry: EntryId) -> Self {
        self.entry = Some(entry);
        self
    }

    pub(super) fn request(mut self, request: RequestId) -> Self {
        self.request = Some(request);
        self
    }

    pub(super) fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The reason given, or nothing.
    pub(super) fn reason_text(&self) -> String {
        self.reason.clone().unwrap_or_default()
    }

    pub(super) fn to_json(&self) -> Vec<u8> {
        super::records::encode(self)
    }
}
