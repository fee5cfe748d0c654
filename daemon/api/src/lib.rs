//! The control API's request and response types and a small client, shared by
//! `sherdd`, `sherdctl` and the testnet, so that the CLI never links libp2p or
//! the store.
//!
//! The API is HTTP/1.1 with JSON bodies over a Unix socket in the daemon's
//! data dir ([`SOCKET_NAME`]), versioned under `/v1`:
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /v1/status` | | 200 [`Status`] |
//! | `GET /v1/peers` | | 200 `[`[`Peer`]`]` |
//! | `POST /v1/connect` | [`ConnectRequest`] | 204 |
//! | `GET /v1/contacts` | | 200 `[`[`Contact`]`]` |
//! | `POST /v1/contacts` | [`AddContact`] | 201 [`Contact`] |
//! | `DELETE /v1/contacts/{feed}` | | 204 |
//! | `GET /v1/audit?from=&limit=` | | 200 `[`[`AuditRecord`]`]` |
//! | `POST /v1/backups` | [`CreateBackup`] | 201 [`Backup`] |
//! | `GET /v1/backups` | | 200 `[`[`Backup`]`]` |
//! | `GET /v1/backups/{id}` | | 200 [`Backup`] |
//! | `POST /v1/backups/{id}/revoke` | | 200 [`Backup`] |
//! | `GET /v1/shards` | | 200 `[`[`HeldShard`]`]` |
//! | `GET /v1/grants` | | 200 `[`[`Grant`]`]` |
//! | `PUT /v1/contacts/{feed}/auto-approve` | [`SetAutoApprove`] | 200 [`Contact`] |
//! | `POST /v1/requests` | [`StartRecovery`] | 201 [`RecoveryRequest`] |
//! | `GET /v1/requests` | | 200 `[`[`RecoveryRequest`]`]` |
//! | `POST /v1/requests/{id}/approve` | [`DecideRequest`] | 200 [`RecoveryRequest`] |
//! | `POST /v1/requests/{id}/deny` | [`DecideRequest`] | 200 [`RecoveryRequest`] |
//! | `GET /v1/recoveries` | | 200 `[`[`Recovery`]`]` |
//! | `GET /v1/recoveries/{backup}` | | 200 [`Recovery`] |
//! | `POST /v1/recoveries/{backup}/secret` | | 200 [`RecoveredSecret`], once |
//! | `GET /v1/events` | | 200 `text/event-stream` of [`Event`] |
//!
//! A daemon started with the hidden `sherdd --test-hooks` flag also serves
//! the fault-injection routes of [`test_hooks`] under `/v1/test/`; any other
//! answers them 404.
//!
//! Every error is an [`ErrorBody`] with a stable [`code`]. This crate never
//! touches the network beyond the daemon's socket, and never depends on
//! libp2p, the store or the daemon.

mod client;
mod sse;
pub mod test_hooks;
mod types;

use std::ffi::OsString;
use std::path::PathBuf;

pub use client::{Client, ClientError, DEFAULT_TIMEOUT, EventStream, RawResponse, StreamItem};
pub use types::{
    AUDIT_LIMIT_DEFAULT, AUDIT_LIMIT_MAX, AddContact, AuditQuery, AuditRecord, Backup,
    BackupCustodian, BackupPolicy, BackupRedeemed, BackupTrustee, CONTACT_NAME_MAX_CHARS,
    ConnectRequest, Contact, CreateBackup, DEFAULT_VETO_DELAY_SECS, DecideRequest, Denial,
    ErrorBody, Event, FeedStatus, Grant, HeldShard, Lagged, MAX_BODY_BYTES, Peer, REASON_MAX_BYTES,
    Received, RecoveredSecret, Recovery, RecoveryRequest, RejectedShard, Reshared, SetAutoApprove,
    StartRecovery, Status, code,
};

/// The version of the sherd workspace this API belongs to.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The file name of the control socket inside the data dir.
pub const SOCKET_NAME: &str = "sherdd.sock";

/// The data dir when none is given: `$XDG_DATA_HOME/sherd` if `XDG_DATA_HOME`
/// is set to an absolute path (the XDG spec says to ignore a relative one),
/// else `$HOME/.local/share/sherd`; `None` if `HOME` is not an absolute path
/// either.
///
/// `$SHERD_DATA_DIR` is not read here: it is a flag's environment override,
/// which the daemon's and the CLI's argument parsers handle.
pub fn default_data_dir() -> Option<PathBuf> {
    data_dir_from(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))
}

fn data_dir_from(xdg_data_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let absolute = |value: Option<OsString>| value.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(xdg) = absolute(xdg_data_home) {
        return Some(xdg.join("sherd"));
    }
    absolute(home).map(|home| home.join(".local/share/sherd"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(xdg: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
        data_dir_from(xdg.map(Into::into), home.map(Into::into))
    }

    #[test]
    fn data_dir_follows_xdg_then_home() {
        assert_eq!(
            dir(Some("/x/data"), Some("/home/a")),
            Some("/x/data/sherd".into())
        );
        assert_eq!(
            dir(None, Some("/home/a")),
            Some("/home/a/.local/share/sherd".into())
        );
        // A relative or empty XDG_DATA_HOME is ignored, as the spec says.
        assert_eq!(
            dir(Some("data"), Some("/home/a")),
            Some("/home/a/.local/share/sherd".into())
        );
        assert_eq!(
            dir(Some(""), Some("/home/a")),
            Some("/home/a/.local/share/sherd".into())
        );
        assert_eq!(dir(None, None), None);
        assert_eq!(dir(Some("rel"), Some("")), None);
        assert_eq!(dir(None, Some("relative/home")), None);
    }
}
