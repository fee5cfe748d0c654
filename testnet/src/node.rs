//! One `sherdd` process of a testnet.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sherd_api::Client;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{HarnessError, START_LIMIT, io, log_path, log_tail};

/// A running (or stopped) daemon.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    feed_id: String,
    listen: String,
    client: Client,
    /// Extra `sherdd` arguments, given again on every restart.
    args: Vec<String>,
}

impl Daemon {
    pub(crate) async fn start(
        sherdd: &Path,
        root: &Path,
        name: &str,
        args: &[String],
    ) -> Result<Self, HarnessError> {
        let data_dir = root.join(name);
        let log = log_path(root, name);
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io(format!("cannot open {}", log.display())))?;
        let mut command = Command::new(sherdd);
        // Nothing from the caller's environment may steer the daemon: no
        // SHERD_* variable, no passphrase, no log filter.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SHERD_") {
                command.env_remove(&key);
            }
        }
        // Plain text in the log: it is read in files and error reports, not
        // on a terminal.
        command
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--mdns", "false"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(io(format!("cannot start {}", sherdd.display())))?;
        let failed = |reason: String| HarnessError::Start {
            name: name.to_owned(),
            reason,
            log_tail: log_tail(&log, 20),
        };

        // The banner on stdout gives the feed id and the bound address.
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| failed("no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut feed_id, mut listen) = (None, None);
        let banner = async {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut words = line.split_whitespace();
                match (words.next(), words.next()) {
                    (Some("feed"), Some(v)) => feed_id = Some(v.to_owned()),
                    (Some("listen"), Some(v)) => {
                        listen = Some(v.to_owned());
                        break;
                    }
                    _ => {}
                }
            }
        };
        if tokio::time::timeout(START_LIMIT, banner).await.is_err() {
            return Err(failed(format!("no banner within {START_LIMIT:?}")));
        }
        let (Some(feed_id), Some(listen)) = (feed_id, listen) else {
            // Its stdout is closed: it has exited, or is about to.
            let status = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            let status = match status {
                Ok(Ok(status)) => status.to_string(),
                _ => "still running, with its stdout closed".into(),
            };
            return Err(failed(format!(
                "it exited ({status}) before saying where it listens"
            )));
        };
        if !listen.starts_with("/ip4/127.0.0.1/") {
            return Err(failed(format!("it listens on {listen}, not on 127.0.0.1")));
        }
        // Keep reading stdout so the daemon never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let client = Client::new(data_dir.join(sherd_api::SOCKET_NAME));
        let deadline = tokio::time::Instant::now() + START_LIMIT;
        while client.status().await.is_err() {
            if tokio::time::Instant::now() > deadline {
                return Err(failed("its control API did not answer".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            name: name.to_owned(),
            data_dir,
            log,
            child: Some(child),
            feed_id,
            listen,
            client,
            args: args.to_vec(),
        })
    }

    /// The extra `sherdd` arguments it was started with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The node's name in the testnet.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its feed id.
    pub fn feed_id(&self) -> &str {
        &self.feed_id
    }

    /// The address it listens on (127.0.0.1).
    pub fn listen(&self) -> &str {
        &self.listen
    }

    /// Its data dir.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Its log file (the daemon's stderr).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Its control socket.
    pub fn socket(&self) -> PathBuf {
        self.data_dir.join(sherd_api::SOCKET_NAME)
    }

    /// A control API client for it.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Its resident memory (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Result<u64, HarnessError> {
        let pid = self
            .pid()
            .ok_or_else(|| HarnessError::NotRunning(self.name.clone()))?;
        crate::rss_kib(pid)
    }

    /// The `sherdctl` line to talk to it by hand (a command follows).
    pub fn sherdctl_line(&self) -> String {
        sherdctl_line(&self.socket())
    }

    pub(crate) fn api_error(&self, source: sherd_api::ClientError) -> HarnessError {
        HarnessError::Api {
            name: self.name.clone(),
            source,
        }
    }

    pub(crate) async fn kill(&mut self) -> Result<(), HarnessError> {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: the goal is a dead process.
            let _ = child.kill().await;
        }
        Ok(())
    }

    pub(crate) async fn stop(&mut self) -> Result<(), HarnessError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            send_signal(pid, "TERM");
        }
        match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => {
                let _ = child.kill().await;
                Err(HarnessError::Start {
                    name: self.name.clone(),
                    reason: "did not stop within 15 s of SIGTERM (killed)".into(),
                    log_tail: log_tail(&self.log, 20),
                })
            }
        }
    }

    /// Lets the process outlive this handle and the harness: it is no longer
    /// killed on drop. Returns its pid, if it runs.
    pub(crate) fn detach(&mut self) -> Option<u32> {
        let child = self.child.take()?;
        let pid = child.id();
        // `kill_on_drop` is fixed at spawn and cannot be undone, so the one
        // way to leave the daemon running is to never drop its handle. This
        // leaks a handle per daemon, once, in a program about to exit.
        std::mem::forget(child);
        pid
    }

    /// SIGKILL without waiting (for `Drop`); tokio reaps the process.
    pub(crate) fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
        }
    }
}

/// Sends a signal (`TERM`, `KILL`) through kill(1): the harness stays free
/// of `unsafe`. If kill(1) fails, the caller's wait for the process to end
/// times out and says so.
pub(crate) fn send_signal(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// `sherdctl --socket SOCKET`, quoted for a shell.
pub(crate) fn sherdctl_line(socket: &Path) -> String {
    format!(
        "sherdctl --socket {}",
        crate::shell_quote(&socket.to_string_lossy())
    )
}
