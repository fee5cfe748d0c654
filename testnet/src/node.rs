//! One `sherdd` process of a testnet.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sherd_api::Client;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{HarnessError, START_LIMIT, io};

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

/// The last `n` lines of a file, for error reports.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Daemon {
    pub(crate) async fn start(
        sherdd: &Path,
        root: &Path,
        name: &str,
        args: &[String],
    ) -> Result<Self, HarnessError> {
        let data_dir = root.join(name);
        let log = root.join(format!("{name}.log"));
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
        command
            .env("RUST_LOG", "info")
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
            log_tail: tail(&log, 20),
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
            let status = child.try_wait().ok().flatten();
            return Err(failed(format!(
                "it exited ({status:?}) before saying where it listens"
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

    /// A control API client for it.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The `sherdctl` line to talk to it by hand.
    pub fn sherdctl_line(&self) -> String {
        format!("sherdctl --data-dir {}", self.data_dir.display())
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
            send_sigterm(pid);
        }
        match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => {
                let _ = child.kill().await;
                Err(HarnessError::Start {
                    name: self.name.clone(),
                    reason: "did not stop within 15 s of SIGTERM (killed)".into(),
                    log_tail: tail(&self.log, 20),
                })
            }
        }
    }

    /// SIGKILL without waiting (for `Drop`); tokio reaps the process.
    pub(crate) fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
        }
    }
}

/// Sends SIGTERM through kill(1): the harness stays free of `unsafe`.
fn send_sigterm(pid: u32) {
    // If kill(1) fails, the caller's wait times out and it falls back to SIGKILL.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}
