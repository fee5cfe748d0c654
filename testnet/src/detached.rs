//! A testnet left running after its program ended ([`Testnet::detach`]), and
//! how to end it from another program ([`Detached::stop`]).
//!
//! The daemons are no longer anyone's children, so they are found again by
//! pid; before any signal, each pid is checked to still be that daemon (its
//! command line names its data dir), so that a pid reused since by another
//! process is never signalled.
//!
//! [`Testnet::detach`]: crate::Testnet::detach

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::node::{send_signal, sherdctl_line};
use crate::{HarnessError, io};

/// How long the daemons get to exit after SIGKILL before `stop` gives up.
const KILL_LIMIT: Duration = Duration::from_secs(5);

/// A testnet whose daemons outlive the program that started them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detached {
    /// The directory holding every node's data dir and log.
    pub root: PathBuf,
    /// The daemons that were running when it was detached.
    pub nodes: Vec<DetachedNode>,
}

/// One daemon of a [`Detached`] testnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachedNode {
    /// Its name in the testnet.
    pub name: String,
    /// Its feed id.
    pub feed_id: String,
    /// Its process id.
    pub pid: u32,
    /// Its data dir.
    pub data_dir: PathBuf,
}

/// What [`Detached::stop`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Daemons that exited after SIGTERM.
    pub terminated: usize,
    /// Daemons that had to be killed (SIGKILL) after the grace period.
    pub killed: usize,
    /// Daemons that were not running any more.
    pub gone: usize,
    /// Whether the directory was there to delete.
    pub removed_root: bool,
}

impl DetachedNode {
    /// Its control socket.
    pub fn socket(&self) -> PathBuf {
        self.data_dir.join(sherd_api::SOCKET_NAME)
    }

    /// The `sherdctl` line to talk to it by hand (a command follows).
    pub fn sherdctl_line(&self) -> String {
        sherdctl_line(&self.socket())
    }

    /// Whether its pid is still this daemon: a live process whose command
    /// line has `--data-dir` and this node's data dir. (A zombie has an
    /// empty command line, so it does not count.)
    pub fn running(&self) -> bool {
        let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", self.pid)) else {
            return false;
        };
        let data_dir = self.data_dir.as_os_str().as_encoded_bytes();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.windows(2)
            .any(|w| w[0] == b"--data-dir" && w[1] == data_dir)
    }
}

impl Detached {
    /// Stops every daemon still running (SIGTERM; SIGKILL for those not gone
    /// after `grace`), then deletes the directory.
    ///
    /// The directory is deleted only if its name is one the harness makes
    /// (`sherd-testnet-...`): the description may come from a file, and a
    /// damaged one must not delete anything else.
    pub async fn stop(&self, grace: Duration) -> Result<Stopped, HarnessError> {
        let is_ours = self
            .root
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("sherd-testnet-"))
            && self.root.is_absolute();
        if !is_ours {
            return Err(HarnessError::Io {
                what: format!(
                    "{} is not a testnet directory; nothing was stopped",
                    self.root.display()
                ),
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            });
        }
        let mut stopped = Stopped::default();
        let running: Vec<&DetachedNode> = self.nodes.iter().filter(|n| n.running()).collect();
        stopped.gone = self.nodes.len() - running.len();
        for node in &running {
            send_signal(node.pid, "TERM");
        }
        let left = wait_for_exit(&running, grace).await;
        stopped.terminated = running.len() - left.len();
        for node in &left {
            send_signal(node.pid, "KILL");
        }
        let survivors = wait_for_exit(&left, KILL_LIMIT).await;
        stopped.killed = left.len() - survivors.len();
        if let Some(node) = survivors.first() {
            return Err(HarnessError::Io {
                what: format!(
                    "daemon {} (pid {}) is still running {KILL_LIMIT:?} after SIGKILL",
                    node.name, node.pid
                ),
                source: std::io::Error::from(std::io::ErrorKind::TimedOut),
            });
        }
        stopped.removed_root = remove_dir(&self.root)?;
        Ok(stopped)
    }
}

/// Polls until none of `nodes` runs, or `limit` passes; returns those still
/// running.
async fn wait_for_exit<'a>(nodes: &[&'a DetachedNode], limit: Duration) -> Vec<&'a DetachedNode> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left: Vec<&DetachedNode> = nodes.iter().copied().filter(|n| n.running()).collect();
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes `dir`; `false` if it was not there.
fn remove_dir(dir: &Path) -> Result<bool, HarnessError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(format!("cannot delete {}", dir.display()))(e)),
    }
}
