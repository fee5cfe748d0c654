//! Notifications: the events a person must act on or know of, taken from
//! the node's event stream and handed to the notifiers of the config's
//! `[notify]` section: commands run with the notification as JSON on stdin,
//! and e-mail over SMTP.
//!
//! Which events notify, and the plain words each one gets, are decided in one
//! place: `notice.rs`. A notification holds ids, counts and our own words,
//! never a secret, a share, a key or a backup's label: the events carry none,
//! and the only record read to add words is a request's (its role and veto
//! window).
//!
//! Delivery never holds the node up. One task reads the event stream (a
//! broadcast: if it falls behind, it sends one "N events missed"
//! notification) and puts each notification on a bounded queue per
//! notifier; each notifier delivers its queue in order on its own task, so a
//! command that hangs (killed at its time limit) or a mail server that is
//! down (a few retries with backoff, bounded) delays nobody else. A failed
//! delivery is logged and written to the audit log.

mod command;
mod notice;
mod smtp;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use sherd_api::Event;
use sherd_protocol::{FeedId, RequestId};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::engine::records;
use crate::store::Store;

use notice::Notice;
pub use notice::{ALL_KINDS, DEFAULT_KINDS};

/// How long a command may run when the config does not say.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Notifications waiting for one notifier at most; more are dropped (and
/// logged) rather than held in memory while, say, a mail server is down.
const QUEUE_DEPTH: usize = 64;
/// The waits between attempts to send one mail: four attempts in all, the
/// last about 2.5 minutes after the first.
const SMTP_RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
];
/// How long a request's record may take to appear after its event.
const RECORD_WAIT: Duration = Duration::from_secs(1);
/// How long one SMTP attempt (connect, TLS, send) may take.
const SMTP_ATTEMPT_LIMIT: Duration = Duration::from_secs(30);

/// The `[notify]` section, validated.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    /// Which events notify.
    pub events: Selection,
    /// Commands to run, each with every notification.
    pub commands: Vec<CommandConfig>,
    /// The mail server, if notifications go out by e-mail.
    pub smtp: Option<SmtpConfig>,
}

impl NotifyConfig {
    /// Whether any notifier is configured.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty() && self.smtp.is_none()
    }
}

/// Which events notify, by their names on the event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every event, including those of the node's own business.
    All,
    /// These kinds (each one of [`ALL_KINDS`]).
    Kinds(Vec<&'static str>),
}

impl Default for Selection {
    /// [`DEFAULT_KINDS`]: what a person must act on or know of.
    fn default() -> Self {
        Self::Kinds(DEFAULT_KINDS.to_vec())
    }
}

impl Selection {
    /// Whether events of `kind` notify.
    pub fn wants(&self, kind: &str) -> bool {
        match self {
            Self::All => true,
            Self::Kinds(kinds) => kinds.contains(&kind),
        }
    }
}

/// One `[[notify.command]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandConfig {
    /// The program and its arguments, run as is (no shell).
    pub argv: Vec<String>,
    /// How long it may run before it is killed.
    pub timeout: Duration,
}

impl CommandConfig {
    /// The program, as logs and the audit log name the command: its
    /// arguments may hold a token, so they are never shown.
    pub fn program(&self) -> &str {
        self.argv.first().map_or("", String::as_str)
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only to a server on this machine (port 25).
    None,
}

impl SmtpTls {
    /// The port this mode uses when the config names none.
    pub fn default_port(self) -> u16 {
        match self {
            Self::StartTls => 587,
            Self::Tls => 465,
            Self::None => 25,
        }
    }
}

/// `[notify.smtp]`.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// The server's host name or address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is protected.
    pub tls: SmtpTls,
    /// The sender.
    pub from: Mailbox,
    /// The recipients (at least one).
    pub to: Vec<Mailbox>,
    /// The login, if the server wants one.
    pub credentials: Option<SmtpCredentials>,
}

/// A login to the mail server.
#[derive(Debug, Clone)]
pub struct SmtpCredentials {
    /// The user name.
    pub username: String,
    /// The password, read at start from `password_file`.
    pub password: SmtpPassword,
}

/// The SMTP password: zeroized on drop, never printed. (lettre keeps its own
/// copy in its transport for the daemon's life, in a plain `String`.)
#[derive(Clone)]
pub struct SmtpPassword(Zeroizing<String>);

impl SmtpPassword {
    /// Wraps a password read from its file.
    pub fn new(password: Zeroizing<String>) -> Self {
        Self(password)
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SmtpPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SmtpPassword(<redacted>)")
    }
}

/// Why the notifiers could not start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The SMTP transport could not be set up (its TLS parameters).
    #[error("cannot set up e-mail to {host}: {message}")]
    Smtp {
        /// The server.
        host: String,
        /// What lettre said.
        message: String,
    },
}

/// The running notifiers; [`Notifier::shutdown`] stops them.
#[derive(Debug)]
pub struct Notifier {
    stop: Option<oneshot::Sender<()>>,
    dispatcher: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl Notifier {
    /// Starts the notifiers `config` names, fed by `events` (the node's event
    /// stream); `node` is this node's feed, named in every notification, and
    /// `store` is read for a request's veto window and written to for the
    /// audit line of a failed delivery. With no notifier configured, nothing
    /// runs and nothing subscribes.
    pub fn start(
        config: NotifyConfig,
        node: FeedId,
        events: broadcast::Receiver<Event>,
        store: Store,
    ) -> Result<Self, NotifyError> {
        if config.is_empty() {
            return Ok(Self {
                stop: None,
                dispatcher: None,
                workers: Vec::new(),
            });
        }
        let mut queues = Vec::new();
        let mut workers = Vec::new();
        for command in config.commands {
            let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
            let name = format!("command {}", command.program());
            let audit = Auditor(store.clone());
            workers.push(tokio::spawn(command::worker(command, rx, audit)));
            queues.push(Queue { name, tx });
        }
        if let Some(smtp) = config.smtp {
            let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
            let name = format!("smtp {}", smtp.host);
            let mailer = smtp::Mailer::new(smtp, SMTP_ATTEMPT_LIMIT, SMTP_RETRY_DELAYS.to_vec())?;
            let audit = Auditor(store.clone());
            workers.push(tokio::spawn(smtp::worker(mailer, rx, audit)));
            queues.push(Queue { name, tx });
        }
        let (stop, stopped) = oneshot::channel();
        let dispatcher = Dispatcher {
            selection: config.events,
            node,
            store,
            queues,
        };
        tracing::info!(notifiers = workers.len(), "notifications on");
        Ok(Self {
            stop: Some(stop),
            dispatcher: Some(tokio::spawn(dispatcher.run(events, stopped))),
            workers,
        })
    }

    /// Stops reading events, lets the notifiers deliver what they hold for
    /// up to `within`, then stops them (a command still running is killed).
    /// Called before the node stops: the notifiers hold a store handle.
    pub async fn shutdown(mut self, within: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(dispatcher) = self.dispatcher.take() {
            let _ = dispatcher.await;
        }
        let workers = std::mem::take(&mut self.workers);
        let aborts: Vec<_> = workers.iter().map(JoinHandle::abort_handle).collect();
        let drained = tokio::time::timeout(within, futures::future::join_all(workers)).await;
        if drained.is_err() {
            tracing::warn!(
                ?within,
                "notifications still being delivered at shutdown were dropped"
            );
            for abort in aborts {
                abort.abort();
            }
        }
    }
}

/// One notifier's queue.
struct Queue {
    /// How logs name the notifier.
    name: String,
    tx: mpsc::Sender<Arc<Notice>>,
}

/// Reads the event stream and queues a notification for every notifier.
struct Dispatcher {
    selection: Selection,
    node: FeedId,
    store: Store,
    queues: Vec<Queue>,
}

impl Dispatcher {
    async fn run(self, mut events: broadcast::Receiver<Event>, mut stop: oneshot::Receiver<()>) {
        loop {
            let received = tokio::select! {
                biased;
                _ = &mut stop => return,
                received = events.recv() => received,
            };
            let now = crate::clock::now_ms();
            let notice = match received {
                Ok(event) => {
                    let record = match &event {
                        Event::RequestReceived {
                            request, requester, ..
                        } if self.selection.wants("request_received") => {
                            self.request(requester, request).await
                        }
                        _ => None,
                    };
                    Notice::of_event(&event, &self.selection, &self.node, now, record.as_ref())
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "notifier: fell behind the event stream");
                    Notice::missed(missed, &self.selection, &self.node, now)
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let Some(notice) = notice else { continue };
            let notice = Arc::new(notice);
            for queue in &self.queues {
                if let Err(mpsc::error::TrySendError::Full(_)) = queue.tx.try_send(notice.clone()) {
                    tracing::warn!(
                        notifier = %queue.name,
                        kind = %notice.kind,
                        "notifier: its queue is full; notification dropped"
                    );
                }
            }
        }
    }
}

impl Dispatcher {
    /// This node's record of a request, if it has one (it names the node's
    /// part and the veto window). The engine may announce a request just
    /// before the step that records it commits, so a missing record is
    /// looked for again for up to [`RECORD_WAIT`]; a request whose record
    /// cannot be read is described without it.
    async fn request(&self, requester: &str, request: &str) -> Option<records::RequestRecord> {
        let requester: FeedId = requester.parse().ok()?;
        let request: RequestId = request.parse().ok()?;
        let deadline = tokio::time::Instant::now() + RECORD_WAIT;
        loop {
            match records::request(&self.store, &requester, &request) {
                Ok(Some(record)) => return Some(record),
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, %request, "notifier: cannot read the request's record");
                    return None;
                }
            }
        }
    }
}

/// Writes the audit line of a delivery that failed for good.
struct Auditor(Store);

impl Auditor {
    async fn failed(&self, notifier: &str, notice: &Notice, reason: &str) {
        let record = serde_json::json!({
            "time_ms": crate::clock::now_ms(),
            "event": "notification_failed",
            "notifier": notifier,
            "kind": notice.kind,
            "result": "failed",
            "reason": reason,
        });
        if let Err(e) = self.0.audit(record.to_string().into_bytes()).await {
            tracing::error!(error = %e, "cannot write the audit record of a failed notification");
        }
    }
}

#[cfg(test)]
mod tests;
