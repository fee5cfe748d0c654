//! The command notifier: runs a program (no shell) with the notification as
//! one JSON object on stdin, kills it at its time limit, and logs how it
//! ended with the end of its stderr.

use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;
use tokio::sync::mpsc;

use super::notice::Notice;
use super::{Auditor, CommandConfig};

/// How much of the end of a command's stderr is kept for the log.
const STDERR_TAIL: usize = 512;
/// How long, once the command exited, its stderr may stay open (a
/// background child of it may hold it) before the tail is given up.
const STDERR_GRACE: Duration = Duration::from_millis(500);

/// How a run went wrong.
#[derive(Debug, thiserror::Error)]
pub(super) enum CommandError {
    /// The program could not be started.
    #[error("cannot start it: {0}")]
    Spawn(std::io::Error),
    /// It did not finish in time and was killed.
    #[error("killed after {} without finishing", limit_text(*.0))]
    TimedOut(Duration),
    /// Waiting for it or writing its input failed.
    #[error("cannot run it: {0}")]
    Io(std::io::Error),
    /// It exited with a failure.
    #[error("{status}{stderr}")]
    Failed {
        /// How it ended.
        status: ExitStatus,
        /// `; stderr ends: ...` with the end of its stderr on one line, or
        /// nothing if it said nothing.
        stderr: String,
    },
}

/// Delivers `queue` to `command`, in order, until the queue closes. A failed
/// run is logged and audited; the next notification runs anyway.
pub(super) async fn worker(
    command: CommandConfig,
    mut queue: mpsc::Receiver<Arc<Notice>>,
    audit: Auditor,
) {
    let notifier = format!("command {}", command.program());
    while let Some(notice) = queue.recv().await {
        match run(&command, &notice.json_line()).await {
            Ok(()) => {
                tracing::debug!(program = %command.program(), kind = %notice.kind, "notification delivered");
            }
            Err(e) => {
                tracing::warn!(
                    program = %command.program(),
                    kind = %notice.kind,
                    error = %e,
                    "notification command failed"
                );
                audit.failed(&notifier, &notice, &e.to_string()).await;
            }
        }
    }
}

/// Runs `command` once with `input` on its stdin.
pub(super) async fn run(command: &CommandConfig, input: &[u8]) -> Result<(), CommandError> {
    let (program, args) = command
        .argv
        .split_first()
        .ok_or_else(|| CommandError::Spawn(std::io::ErrorKind::InvalidInput.into()))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Whatever path leaves this function, the child does not outlive it.
        .kill_on_drop(true)
        // Its own process group, so that at the time limit whatever it
        // started goes with it.
        .process_group(0)
        .spawn()
        .map_err(CommandError::Spawn)?;
    let stdin = child.stdin.take();
    // Read on its own task, so that a command that fills its stderr is never
    // blocked by us, and a tail that never ends (a background child holding
    // the pipe) can be given up.
    let stderr = child.stderr.take().map(|err| tokio::spawn(tail(err)));

    let work = async {
        if let Some(mut stdin) = stdin {
            match stdin.write_all(input).await {
                // A command may not read its input at all.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(CommandError::Io(e)),
                Ok(()) => {}
            }
            // Dropping it closes the pipe: the command sees the end of its input.
        }
        child.wait().await.map_err(CommandError::Io)
    };
    let status = match tokio::time::timeout(command.timeout, work).await {
        Ok(status) => status?,
        Err(_) => {
            // SIGKILL to its whole group (what it started too), then reap it.
            if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.start_kill();
            let _ = child.wait().await;
            if let Some(task) = stderr {
                task.abort();
            }
            return Err(CommandError::TimedOut(command.timeout));
        }
    };
    if status.success() {
        if let Some(task) = stderr {
            task.abort();
        }
        return Ok(());
    }
    let stderr = match stderr {
        Some(mut task) => match tokio::time::timeout(STDERR_GRACE, &mut task).await {
            Ok(Ok(bytes)) if !one_line(&bytes).is_empty() => {
                format!("; stderr ends: {}", one_line(&bytes))
            }
            _ => {
                task.abort();
                String::new()
            }
        },
        None => String::new(),
    };
    Err(CommandError::Failed { status, stderr })
}

/// A time limit as the config gives it (whole seconds) or as tests do (ms).
fn limit_text(limit: Duration) -> String {
    if limit.subsec_millis() == 0 {
        format!("{} s", limit.as_secs())
    } else {
        format!("{} ms", limit.as_millis())
    }
}

/// Reads `reader` to its end, keeping the last [`STDERR_TAIL`] bytes.
async fn tail(mut reader: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(buf.get(..n).unwrap_or_default());
                if kept.len() > 2 * STDERR_TAIL {
                    kept.drain(..kept.len() - STDERR_TAIL);
                }
            }
        }
    }
    if kept.len() > STDERR_TAIL {
        kept.drain(..kept.len() - STDERR_TAIL);
    }
    kept
}

/// Stderr on one short line for a log: lossy UTF-8, line breaks shown as
/// ` / `, other control characters dropped.
fn one_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim()
        .lines()
        .map(|line| line.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|line| !line.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}
