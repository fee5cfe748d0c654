//! The multi-process harness: real `sherdd` processes on 127.0.0.1, each with
//! its own temporary data dir, driven through the control API (`sherd-api`).
//!
//! It never links the daemon: it runs the `sherdd` binary, found next to the
//! running executable in Cargo's target dir or at `$SHERD_SHERDD`. Every
//! daemon listens on `127.0.0.1` on a port the OS picks (so parallel tests
//! cannot collide) with mDNS off, and inherits no `SHERD_*` variable from the
//! caller's environment. Dropping a [`Testnet`] kills every process it
//! started; if the thread is panicking (a failed test), the data dirs and
//! logs are kept and their path printed. [`Testnet::close`] stops them and
//! removes every file in order; [`Testnet::detach`] leaves them running, for
//! a later [`Detached::stop`].

mod detached;
mod node;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use detached::{Detached, DetachedNode, Stopped};
pub use node::Daemon;

/// How long a daemon may take to start answering its control API.
pub const START_LIMIT: Duration = Duration::from_secs(20);

/// Why the harness could not do what it was asked.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The `sherdd` binary is not where it was looked for.
    #[error(
        "sherdd not found at {0}; build it first (`cargo build -p sherd-daemon`) or set SHERD_SHERDD"
    )]
    NoDaemonBinary(PathBuf),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A daemon did not start, or exited; the log tail says why.
    #[error("daemon {name} did not start: {reason}\n--- last lines of its log ---\n{log_tail}")]
    Start {
        /// The node's name.
        name: String,
        /// What went wrong.
        reason: String,
        /// The end of its stderr.
        log_tail: String,
    },
    /// The control API refused or failed a request.
    #[error("daemon {name}: {source}")]
    Api {
        /// The node's name.
        name: String,
        /// The client's error.
        source: sherd_api::ClientError,
    },
    /// No node has that name.
    #[error("no node named {0}")]
    NoSuchNode(String),
    /// The node has no running process (it was stopped or killed).
    #[error("daemon {0} is not running")]
    NotRunning(String),
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}

/// Where the harness writes the log (stderr) of the node `name`.
pub(crate) fn log_path(root: &Path, name: &str) -> PathBuf {
    root.join(format!("{name}.log"))
}

/// The last `n` lines of a file (empty if it cannot be read), for error
/// reports.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The resident memory of process `pid` (`VmRSS` in `/proc/PID/status`),
/// in KiB.
pub fn rss_kib(pid: u32) -> Result<u64, HarnessError> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(io(format!("cannot read {path}")))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| HarnessError::Io {
            what: format!("no VmRSS line in {path}"),
            source: std::io::Error::from(std::io::ErrorKind::InvalidData),
        })
}

/// `word` as a POSIX shell would need it typed: as is when it holds only
/// characters no shell treats specially, else in single quotes.
pub fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Where the `sherdd` binary is: `$SHERD_SHERDD`, else beside the running
/// executable (tests run from `target/<profile>/deps`, binaries from
/// `target/<profile>`).
pub fn sherdd_path() -> Result<PathBuf, HarnessError> {
    if let Some(p) = std::env::var_os("SHERD_SHERDD") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(io("cannot find the running executable"))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let candidate = dir.join("sherdd");
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(HarnessError::NoDaemonBinary(candidate))
    }
}

/// A set of daemons on this machine.
#[derive(Debug)]
pub struct Testnet {
    root: Option<tempfile::TempDir>,
    sherdd: PathBuf,
    daemons: Vec<Daemon>,
}

impl Testnet {
    /// An empty testnet in a fresh temporary directory.
    pub fn new() -> Result<Self, HarnessError> {
        let root = tempfile::Builder::new()
            .prefix("sherd-testnet-")
            .tempdir()
            .map_err(io("cannot make the testnet's temp dir"))?;
        Ok(Self {
            root: Some(root),
            sherdd: sherdd_path()?,
            daemons: Vec::new(),
        })
    }

    /// The directory holding every node's data dir and log.
    pub fn root(&self) -> &Path {
        self.root
            .as_ref()
            .map_or(Path::new("."), tempfile::TempDir::path)
    }

    /// Starts a daemon named `name` and waits until its control API answers.
    pub async fn start(&mut self, name: &str) -> Result<&Daemon, HarnessError> {
        self.start_with(name, &[]).await
    }

    /// [`Testnet::start`] with extra `sherdd` arguments (kept for restarts),
    /// for example the test hook `--test-tamper-releases`.
    pub async fn start_with(&mut self, name: &str, args: &[&str]) -> Result<&Daemon, HarnessError> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let daemon = Daemon::start(&self.sherdd, self.root(), name, &args).await?;
        self.daemons.push(daemon);
        self.daemons
            .last()
            .ok_or_else(|| HarnessError::NoSuchNode(name.to_owned()))
    }

    /// The daemon named `name`.
    pub fn node(&self, name: &str) -> Result<&Daemon, HarnessError> {
        self.daemons
            .iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| HarnessError::NoSuchNode(name.to_owned()))
    }

    fn node_mut(&mut self, name: &str) -> Result<&mut Daemon, HarnessError> {
        self.daemons
            .iter_mut()
            .find(|d| d.name() == name)
            .ok_or_else(|| HarnessError::NoSuchNode(name.to_owned()))
    }

    /// Every daemon, in start order.
    pub fn daemons(&self) -> &[Daemon] {
        &self.daemons
    }

    /// `from` dials `to`.
    pub async fn connect(&self, from: &str, to: &str) -> Result<(), HarnessError> {
        let addr = self.node(to)?.listen().to_owned();
        let from = self.node(from)?;
        from.client()
            .connect(&addr)
            .await
            .map_err(|source| from.api_error(source))
    }

    /// Each of `a` and `b` adds the other as a contact (under its name).
    pub async fn befriend(&self, a: &str, b: &str) -> Result<(), HarnessError> {
        for (me, other) in [(a, b), (b, a)] {
            let other_feed = self.node(other)?.feed_id().to_owned();
            let me = self.node(me)?;
            me.client()
                .add_contact(&other_feed, other, false)
                .await
                .map_err(|source| me.api_error(source))?;
        }
        Ok(())
    }

    /// Kills a daemon with SIGKILL, as a crash would.
    pub async fn kill(&mut self, name: &str) -> Result<(), HarnessError> {
        self.node_mut(name)?.kill().await
    }

    /// Stops a daemon with SIGTERM and waits for it to exit.
    pub async fn stop(&mut self, name: &str) -> Result<(), HarnessError> {
        self.node_mut(name)?.stop().await
    }

    /// Starts a stopped or killed daemon again, from its data dir.
    pub async fn restart(&mut self, name: &str) -> Result<(), HarnessError> {
        let sherdd = self.sherdd.clone();
        let root = self.root().to_path_buf();
        let daemon = self.node_mut(name)?;
        daemon.kill().await?;
        let args = daemon.args().to_vec();
        *daemon = Daemon::start(&sherdd, &root, name, &args).await?;
        Ok(())
    }

    /// Kills a daemon and deletes its data dir, key included: a lost device.
    /// The node is gone from the testnet; its name can be used again.
    pub async fn remove(&mut self, name: &str) -> Result<(), HarnessError> {
        let index = self
            .daemons
            .iter()
            .position(|d| d.name() == name)
            .ok_or_else(|| HarnessError::NoSuchNode(name.to_owned()))?;
        let mut daemon = self.daemons.remove(index);
        daemon.kill().await?;
        std::fs::remove_dir_all(daemon.data_dir())
            .map_err(io(format!("cannot delete {}", daemon.data_dir().display())))
    }

    /// The log file of the node `name`, also once it was removed (a lost
    /// device's log outlives its data dir).
    pub fn log_of(&self, name: &str) -> PathBuf {
        log_path(self.root(), name)
    }

    /// Stops every daemon (SIGKILL, waiting for each to exit: nothing is
    /// left to write into the directory) and then deletes the testnet's
    /// directory, saying so if it cannot.
    pub async fn close(mut self) -> Result<(), HarnessError> {
        for d in &mut self.daemons {
            d.kill().await?;
        }
        match self.root.take() {
            Some(root) => {
                let path = root.path().to_owned();
                root.close()
                    .map_err(io(format!("cannot delete {}", path.display())))
            }
            None => Ok(()),
        }
    }

    /// Leaves every running daemon running and the directory in place, past
    /// the end of this program: the testnet forgets them. What it returns is
    /// what [`Detached::stop`] needs to end them later. Stopped daemons are
    /// not in it.
    pub fn detach(mut self) -> Detached {
        let nodes = self
            .daemons
            .iter_mut()
            .filter_map(|d| {
                let pid = d.detach()?;
                Some(DetachedNode {
                    name: d.name().to_owned(),
                    feed_id: d.feed_id().to_owned(),
                    pid,
                    data_dir: d.data_dir().to_owned(),
                })
            })
            .collect();
        let root = self
            .root
            .take()
            .map(tempfile::TempDir::keep)
            .unwrap_or_default();
        Detached { root, nodes }
    }

    /// The `sherdctl` binary beside `sherdd` (for tests and the demo that
    /// drive a node the way a person would).
    pub fn sherdctl(&self) -> PathBuf {
        self.sherdd.with_file_name("sherdctl")
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        for d in &mut self.daemons {
            d.kill_now();
        }
        if std::thread::panicking()
            && let Some(root) = self.root.take()
        {
            let kept = root.keep();
            eprintln!(
                "sherd-testnet: a test failed; data dirs and logs kept in {}",
                kept.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(
            shell_quote("/tmp/sherd-testnet-Ab1/c1/sherdd.sock"),
            "/tmp/sherd-testnet-Ab1/c1/sherdd.sock"
        );
        assert_eq!(shell_quote("12D3KooWabc"), "12D3KooWabc");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote(""), "''");
    }
}
