//! The e-mail notifier: one plain-text mail per notification (the words,
//! then the JSON) over SMTP with lettre, retried a few times with backoff.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use tokio::sync::mpsc;

use super::notice::Notice;
use super::{Auditor, NotifyError, SmtpConfig, SmtpTls};

/// A configured mail server and the mail's addresses.
pub(super) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    host: String,
    port: u16,
    from: Mailbox,
    to: Vec<Mailbox>,
    attempt_limit: Duration,
    retry_delays: Vec<Duration>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The transport holds the password.
        f.debug_struct("Mailer")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Sets up the transport (TLS parameters, login); connects only to send.
    /// Each attempt may take `attempt_limit`; a transient failure is retried
    /// after each of `retry_delays` in turn.
    pub(super) fn new(
        config: SmtpConfig,
        attempt_limit: Duration,
        retry_delays: Vec<Duration>,
    ) -> Result<Self, NotifyError> {
        let tls_parameters = || {
            TlsParameters::new(config.host.clone()).map_err(|e| NotifyError::Smtp {
                host: config.host.clone(),
                message: e.to_string(),
            })
        };
        let tls = match config.tls {
            // Required, not opportunistic: no mail and no password goes out
            // if the server does not offer STARTTLS.
            SmtpTls::StartTls => Tls::Required(tls_parameters()?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters()?),
            SmtpTls::None => Tls::None,
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str())
                .port(config.port)
                .tls(tls)
                .timeout(Some(attempt_limit));
        if let Some(login) = &config.credentials {
            builder = builder.credentials(Credentials::new(
                login.username.clone(),
                login.password.expose().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            host: config.host,
            port: config.port,
            from: config.from,
            to: config.to,
            attempt_limit,
            retry_delays,
        })
    }

    /// The mail for `notice`.
    fn message(&self, notice: &Notice) -> Result<Message, lettre::error::Error> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(notice.subject.as_str())
            .message_id(None)
            .user_agent(format!("sherdd {}", env!("CARGO_PKG_VERSION")))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder.body(notice.mail_body())
    }

    /// Sends the mail for `notice`, retrying a transient failure after each
    /// of the retry delays; the error says what the last attempt met.
    pub(super) async fn deliver(&self, notice: &Notice) -> Result<(), String> {
        let message = self
            .message(notice)
            .map_err(|e| format!("cannot build the mail: {e}"))?;
        let mut delays = self.retry_delays.iter();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let sent =
                tokio::time::timeout(self.attempt_limit, self.transport.send(message.clone()))
                    .await;
            let (error, permanent) = match sent {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => (e.to_string(), e.is_permanent()),
                Err(_) => (
                    format!(
                        "no answer from {}:{} within {}s",
                        self.host,
                        self.port,
                        self.attempt_limit.as_secs()
                    ),
                    false,
                ),
            };
            // A permanent refusal (a bad address, a failed login) fails the
            // same way again: no retry.
            match delays.next() {
                Some(delay) if !permanent => {
                    tracing::info!(
                        host = %self.host,
                        kind = %notice.kind,
                        error = %error,
                        retry_in = ?delay,
                        "notification mail not sent yet"
                    );
                    tokio::time::sleep(*delay).await;
                }
                _ => {
                    let tries = if attempts == 1 {
                        "1 attempt".to_owned()
                    } else {
                        format!("{attempts} attempts")
                    };
                    return Err(format!("{error} ({tries})"));
                }
            }
        }
    }
}

/// Delivers `queue` by mail, in order, until the queue closes. A mail that
/// could not be sent is logged and audited; the next one is tried anyway.
pub(super) async fn worker(mailer: Mailer, mut queue: mpsc::Receiver<Arc<Notice>>, audit: Auditor) {
    let notifier = format!("smtp {}", mailer.host);
    while let Some(notice) = queue.recv().await {
        match mailer.deliver(&notice).await {
            Ok(()) => {
                tracing::debug!(host = %mailer.host, kind = %notice.kind, "notification mailed");
            }
            Err(e) => {
                tracing::warn!(
                    host = %mailer.host,
                    kind = %notice.kind,
                    error = %e,
                    "notification mail failed"
                );
                audit.failed(&notifier, &notice, &e).await;
            }
        }
    }
}
