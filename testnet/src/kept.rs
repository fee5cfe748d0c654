//! Networks left running on purpose (`demo --keep`, `up --keep`): where they
//! are recorded, and `down`, which stops them.
//!
//! The record is one JSON file, `{"networks": [Detached, ...]}`, in a
//! directory only this user can write: `down` deletes the directories it
//! names, so it must never read a file someone else could have planted.

use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sherd_testnet::Detached;

use crate::say;

/// How long `down` lets each daemon shut down cleanly before SIGKILL.
const GRACE: Duration = Duration::from_secs(15);

/// The state file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    networks: Vec<Detached>,
}

/// The state file `down` reads: `--state`, else the per-user default.
#[derive(Debug, Clone)]
pub(crate) struct StateFile {
    path: PathBuf,
    /// Whether `path` is the default (so `down` needs no `--state`).
    default: bool,
}

/// This process's effective uid (the owner of `/proc/self`).
fn uid() -> anyhow::Result<u32> {
    Ok(std::fs::metadata("/proc/self")
        .context("cannot read /proc/self to learn the user id")?
        .uid())
}

impl StateFile {
    /// `given`, or `$XDG_RUNTIME_DIR/sherd-testnet/kept.json`, or
    /// `/tmp/sherd-testnet-UID/kept.json`.
    pub(crate) fn new(given: Option<PathBuf>) -> anyhow::Result<Self> {
        if let Some(path) = given {
            return Ok(Self {
                path,
                default: false,
            });
        }
        let dir = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
            Some(run) if run.is_absolute() => run.join("sherd-testnet"),
            _ => std::env::temp_dir().join(format!("sherd-testnet-{}", uid()?)),
        };
        Ok(Self {
            path: dir.join("kept.json"),
            default: true,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The command that stops what this file records.
    pub(crate) fn down_command(&self) -> String {
        if self.default {
            "sherd-testnet down".into()
        } else {
            format!(
                "sherd-testnet down --state {}",
                sherd_testnet::shell_quote(&self.path.to_string_lossy())
            )
        }
    }

    /// Adds a network to the record.
    pub(crate) fn record(&self, network: Detached) -> anyhow::Result<()> {
        let mut state = self.load()?.unwrap_or_default();
        state.networks.push(network);
        self.save(&state)
    }

    /// The record, if there is one. Refused if the file or its directory
    /// could have been written by another user.
    fn load(&self) -> anyhow::Result<Option<State>> {
        match std::fs::symlink_metadata(&self.path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", self.path.display()));
            }
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            check_private(dir, true)?;
        }
        check_private(&self.path, false)?;
        let text = std::fs::read_to_string(&self.path)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        let state = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a record of kept networks; delete it by hand",
                self.path.display()
            )
        })?;
        Ok(Some(state))
    }

    /// Writes the record whole (a new file renamed over the old), in a
    /// directory made private to this user if it is the default one.
    fn save(&self, state: &State) -> anyhow::Result<()> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if self.default {
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).with_context(|| format!("cannot make {}", dir.display())),
            }
        }
        check_private(dir, true)?;
        let json = serde_json::to_string_pretty(state).context("cannot encode the record")?;
        let temp = dir.join(format!(".kept.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)?;
            file.write_all(json.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&temp, &self.path)
        };
        write().with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// `sherd-testnet down`: stops every recorded network and forgets it.
    pub(crate) async fn down(&self) -> anyhow::Result<()> {
        let Some(state) = self.load()? else {
            say(&format!(
                "no kept network (nothing recorded in {})",
                self.path.display()
            ));
            return Ok(());
        };
        if state.networks.is_empty() {
            say("no kept network");
            remove_file(&self.path)?;
            return Ok(());
        }
        let mut failed = Vec::new();
        let mut errors = Vec::new();
        for network in state.networks {
            match network.stop(GRACE).await {
                Ok(stopped) => {
                    let mut how = format!(
                        "stopped {} daemon{}",
                        stopped.terminated + stopped.killed,
                        plural(stopped.terminated + stopped.killed)
                    );
                    if stopped.killed > 0 {
                        how.push_str(&format!(
                            " ({} of them with SIGKILL, after {} s)",
                            stopped.killed,
                            GRACE.as_secs()
                        ));
                    }
                    if stopped.gone > 0 {
                        how.push_str(&format!("; {} had exited already", stopped.gone));
                    }
                    let dir = if stopped.removed_root {
                        "deleted"
                    } else {
                        "was gone already"
                    };
                    say(&format!("{how}; {} {dir}", network.root.display()));
                }
                Err(e) => {
                    errors.push(format!("{}: {e}", network.root.display()));
                    failed.push(network);
                }
            }
        }
        if failed.is_empty() {
            remove_file(&self.path)?;
            return Ok(());
        }
        self.save(&State { networks: failed })?;
        anyhow::bail!(
            "could not stop every kept network (still recorded in {}):\n{}",
            self.path.display(),
            errors.join("\n")
        )
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn remove_file(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot delete {}", path.display())),
    }
}

/// Refuses `path` unless it is ours, not a symlink, and nobody else may
/// write to it (for the directory: nobody else may replace the file).
fn check_private(path: &Path, dir: bool) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let problem = if meta.file_type().is_symlink() {
        Some("it is a symlink")
    } else if dir && !meta.is_dir() {
        Some("it is not a directory")
    } else if meta.uid() != uid()? {
        Some("another user owns it")
    } else if meta.mode() & 0o022 != 0 {
        Some("other users may write to it")
    } else {
        None
    };
    match problem {
        Some(why) => anyhow::bail!(
            "refusing to use {} for the record of kept networks: {why}",
            path.display()
        ),
        None => Ok(()),
    }
}
