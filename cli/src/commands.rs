//! The work of each command: find the socket, make one call (or follow the
//! event stream, or poll a recovery until its secret is there) through
//! `sherd_api::Client`, hand the answer to the printer.
//!
//! Nothing here decides an exit status or prints an error (that is
//! `main.rs`), and nothing validates what the daemon validates: a bad feed id
//! or name is sent as typed and the daemon's refusal is shown.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sherd_api::{
    AuditQuery, Client, DecideRequest, RecoveredSecret, Recovery, SOCKET_NAME, StartRecovery,
    StreamItem,
};
use zeroize::Zeroizing;

use crate::cli::{BackupCommand, Command, ContactsCommand, Global, RecoveryShape};
use crate::output::{Decision, Names, Printer, RecoveryProgress};

/// A usage problem found after parsing (exit status 2, like clap's).
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A refusal found by `sherdctl` itself in the daemon's answer, which the
/// daemon would have refused had it been asked (exit status 1, like a 4xx).
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// How often `recover` asks the daemon how its recovery is doing.
const POLL: Duration = Duration::from_millis(500);

/// Runs `command` and prints its answer on stdout.
pub(crate) async fn run(global: &Global, command: Command) -> anyhow::Result<()> {
    let client = Client::new(socket(global)?);
    let stdout = io::stdout();
    let mut out = Printer::new(stdout.lock(), global.json);
    match command {
        Command::Id => out.id(&client.status().await?.feed_id)?,
        Command::Status => out.status(&client.status().await?)?,
        Command::Peers => out.peers(&client.peers().await?)?,
        Command::Connect { multiaddr } => {
            client.connect(&multiaddr).await?;
            out.connected(&multiaddr)?;
        }
        Command::Contacts(ContactsCommand::Add {
            feed,
            name,
            auto_approve,
        }) => {
            out.contact_added(&client.add_contact(&feed, &name, auto_approve).await?)?;
        }
        Command::Contacts(ContactsCommand::List) => out.contacts(&client.contacts().await?)?,
        Command::Contacts(ContactsCommand::AutoApprove { feed, enabled }) => {
            out.auto_approve(&client.set_auto_approve(&feed, enabled).await?)?;
        }
        Command::Contacts(ContactsCommand::Remove { feed }) => {
            client.remove_contact(&feed).await?;
            out.contact_removed(&feed)?;
        }
        Command::Audit { from, limit } => {
            let query = AuditQuery {
                from: Some(from),
                limit: Some(usize::try_from(limit)?),
            };
            out.audit(&client.audit(query).await?)?;
        }
        Command::Events { follow: _ } => follow(&client, &mut out).await?,
        Command::Backup(BackupCommand::Create {
            label,
            custodians,
            threshold,
            file,
            trustees,
            veto_delay,
            one_time,
            release,
        }) => {
            let request = sherd_api::CreateBackup {
                label,
                threshold,
                custodians,
                secret: read_secret(file.as_deref())?,
                trustees,
                veto_delay_secs: veto_delay,
                one_time,
                release,
            };
            out.backup(&client.create_backup(&request).await?, now_ms())?;
        }
        Command::Backup(BackupCommand::List) => out.backups(&client.backups().await?)?,
        Command::Backup(BackupCommand::Show { id }) => {
            out.backup(&client.backup(&id).await?, now_ms())?;
        }
        Command::Backup(BackupCommand::Revoke { id }) => {
            out.backup(&client.revoke_backup(&id).await?, now_ms())?;
        }
        Command::Backup(BackupCommand::Reshare {
            id,
            custodians,
            threshold,
            file,
            label,
            trustees,
            veto_delay,
            one_time,
            release,
        }) => {
            // The old backup's terms carry over unless the user changed them;
            // asked before the secret is read, so a wrong id costs nothing.
            let old = client.backup(&id).await?;
            let policy = old.policy.as_ref();
            let trustees = if trustees.is_empty() {
                old.trustees.iter().map(|t| t.feed.clone()).collect()
            } else {
                trustees
            };
            let request = sherd_api::CreateBackup {
                label: label.unwrap_or(old.label),
                threshold,
                custodians,
                trustees,
                veto_delay_secs: veto_delay.or(policy.map(|p| p.veto_delay_secs)),
                one_time: one_time || policy.is_some_and(|p| p.one_time),
                release: release.or(policy.map(|p| p.release.clone())),
                secret: read_secret(file.as_deref())?,
            };
            out.reshared(&client.reshare_backup(&id, &request).await?, now_ms())?;
        }
        Command::Shards => out.shards(&client.shards().await?)?,
        Command::Grants => out.grants(&client.grants().await?)?,
        Command::RequestRecovery(args) => {
            let start = match args.shape().map_err(UsageError)? {
                RecoveryShape::Owner { backup } => StartRecovery {
                    backup: Some(backup),
                    ..StartRecovery::default()
                },
                RecoveryShape::LostDevice { owner, to, backup } => StartRecovery {
                    backup,
                    owner: Some(owner),
                    to: Some(to),
                },
            };
            let request = client.start_recovery(&start).await?;
            let names = if out.is_json() {
                Names::default()
            } else {
                names(&client).await?
            };
            out.recovery_requested(&request, &names)?;
        }
        Command::Requests => out.requests(&client.requests().await?, now_ms())?,
        Command::Approve { request, from } => {
            let decision = DecideRequest {
                from,
                ..DecideRequest::default()
            };
            let answer = client.approve(&request, &decision).await?;
            out.decided(Decision::Approved, &answer)?;
        }
        Command::Forward { request, to, from } => {
            let decision = DecideRequest {
                from,
                to: Some(to),
                reason: None,
            };
            let answer = client.approve(&request, &decision).await?;
            out.decided(Decision::Forwarded, &answer)?;
        }
        Command::Deny {
            request,
            reason,
            from,
        } => {
            let decision = DecideRequest {
                from,
                to: None,
                reason,
            };
            let answer = client.deny(&request, &decision).await?;
            out.decided(Decision::Denied, &answer)?;
        }
        Command::Recover {
            backup,
            output,
            show,
            timeout,
        } => {
            // Decided before anything is asked of the daemon: a refusal after
            // the wait, or worse after the secret is handed over, would lose
            // the one chance to fetch it.
            let destination = destination(output, show, io::stdout().is_terminal())?;
            let backup = match backup {
                Some(backup) => backup,
                None => in_progress(&client.recoveries().await?)?,
            };
            let timeout = timeout.map(Duration::from_secs);
            let recovery = wait_for_secret(&client, &backup, timeout).await?;
            deliver(&client, &mut out, &recovery.backup, destination).await?;
        }
    }
    Ok(())
}

/// Contact names by feed id, to show people rather than keys.
async fn names(client: &Client) -> anyhow::Result<Names> {
    let contacts = client.contacts().await?;
    Ok(Names(
        contacts.into_iter().map(|c| (c.feed, c.name)).collect(),
    ))
}

/// Now, in ms since the Unix epoch (0 if the clock is before it).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Where `recover` puts the secret.
#[derive(Debug, PartialEq, Eq)]
enum Destination {
    /// A new file, created 0600 with `O_EXCL`.
    File(PathBuf),
    /// Standard output.
    Stdout,
}

/// Where the secret goes, or why not: never onto a terminal unless `--show`
/// says so (it would stay on screen and in the scrollback), never over an
/// existing file. The file is checked here so that a mistake shows at once,
/// and created with `O_EXCL` only when the secret is there.
fn destination(
    output: Option<PathBuf>,
    show: bool,
    stdout_is_terminal: bool,
) -> Result<Destination, UsageError> {
    match output {
        Some(path) => {
            if path.symlink_metadata().is_ok() {
                return Err(exists(&path));
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
                && !dir.is_dir()
            {
                return Err(UsageError(format!(
                    "cannot write the secret to {}: {} is not a directory",
                    path.display(),
                    dir.display()
                )));
            }
            Ok(Destination::File(path))
        }
        None if stdout_is_terminal && !show => Err(UsageError(
            "standard output is a terminal, where the secret would stay on screen; \
             write it to a new file with --output FILE, pipe it to a program, or pass \
             --show to print it anyway"
                .into(),
        )),
        None => Ok(Destination::Stdout),
    }
}

fn exists(path: &Path) -> UsageError {
    UsageError(format!(
        "{} exists; the secret is only written to a new file, name another",
        path.display()
    ))
}

/// The backup of the one recovery in progress (collecting or complete),
/// for `recover` without BACKUP.
fn in_progress(recoveries: &[Recovery]) -> Result<String, UsageError> {
    let live: Vec<&Recovery> = recoveries
        .iter()
        .filter(|r| matches!(r.state.as_str(), "collecting" | "complete"))
        .collect();
    let list = |recoveries: &[&Recovery]| {
        recoveries
            .iter()
            .map(|r| format!("{} {}", r.backup, r.state))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match live.as_slice() {
        [one] => Ok(one.backup.clone()),
        [] if recoveries.is_empty() => Err(UsageError(
            "no recovery on this node: start one with `sherdctl request-recovery`, \
             or name the backup: `sherdctl recover BACKUP`"
                .into(),
        )),
        [] => Err(UsageError(format!(
            "no recovery in progress on this node ({}); start one with \
             `sherdctl request-recovery`",
            list(&recoveries.iter().collect::<Vec<_>>())
        ))),
        several => Err(UsageError(format!(
            "{} recoveries are in progress ({}); name one: `sherdctl recover BACKUP`",
            several.len(),
            list(several)
        ))),
    }
}

/// Polls the recovery of `backup` until its secret is there, telling on
/// stderr what changes: shards in, shards refused, custodians who denied.
async fn wait_for_secret(
    client: &Client,
    backup: &str,
    timeout: Option<Duration>,
) -> anyhow::Result<Recovery> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let names = names(client).await?;
    let mut progress = RecoveryProgress::default();
    loop {
        let recovery = client.recovery(backup).await?;
        for line in progress.news(&recovery, &names) {
            eprintln!("{line}");
        }
        match recovery.state.as_str() {
            "complete" => return Ok(recovery),
            "collecting" => {}
            "delivered" => {
                return Err(Refused(format!(
                    "the secret of {backup} was already handed over; the daemon no longer has it"
                ))
                .into());
            }
            "failed" => anyhow::bail!("{}", progress.failure(&recovery, &names)),
            other => anyhow::bail!(
                "the daemon says the recovery of {backup} is {other:?}, \
                 which this sherdctl does not know"
            ),
        }
        let pause = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    anyhow::bail!(
                        "no secret after {} s ({}); the recovery goes on in the daemon: \
                         run `sherdctl recover {backup}` again",
                        timeout.unwrap_or_default().as_secs(),
                        progress.current()
                    );
                }
                left.min(POLL)
            }
            None => POLL,
        };
        tokio::time::sleep(pause).await;
    }
}

/// Fetches the secret (the daemon forgets it as it answers) and writes it
/// to `destination`. A file is created before the secret is fetched, so that
/// a path that cannot be written does not cost the secret.
async fn deliver(
    client: &Client,
    out: &mut Printer<impl Write>,
    backup: &str,
    destination: Destination,
) -> anyhow::Result<()> {
    match destination {
        Destination::File(path) => {
            let mut file = create_secret_file(&path)?;
            let written = async {
                let secret = client.take_secret(backup).await?;
                let bytes = decode_secret(&secret)?;
                file.write_all(&bytes)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "the daemon handed the secret over and no longer has it, \
                             but writing it to {} failed: {e}",
                            path.display()
                        )
                    })?;
                anyhow::Ok(secret)
            }
            .await;
            let secret = match written {
                Ok(secret) => secret,
                Err(e) => {
                    // Ours (created just now, exclusively), and empty or
                    // holding part of a secret: either way, not to be kept.
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
            };
            sync_parent(&path);
            out.secret_written(&secret, &path)?;
        }
        Destination::Stdout => {
            let secret = client.take_secret(backup).await?;
            let bytes = decode_secret(&secret)?;
            // Not a bare io::Error: a closed pipe here loses the secret,
            // and must not pass for the quiet success it is elsewhere.
            out.secret(&secret, &bytes).map_err(|e| {
                anyhow::anyhow!(
                    "the daemon handed the secret over and no longer has it, \
                     but writing it to standard output failed: {e}"
                )
            })?;
            if !out.is_json() {
                eprintln!(
                    "{}recovered the secret {:?} of backup {}; the daemon has forgotten it",
                    // The secret has no newline of its own; on a terminal
                    // the note starts on a line of its own.
                    if io::stdout().is_terminal() { "\n" } else { "" },
                    secret.label,
                    secret.backup
                );
            }
        }
    }
    Ok(())
}

/// A new file for the secret: `O_CREAT | O_EXCL`, mode 0600, so that no
/// existing file (nor a symlink planted in its place) is ever written.
fn create_secret_file(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => exists(path).into(),
            _ => anyhow::anyhow!("cannot create {}: {e}", path.display()),
        })
}

/// Makes the new file's name durable too. Best effort: some file systems
/// refuse to sync a directory, and the secret itself is already synced.
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let Ok(dir) = std::fs::File::open(parent) {
        let _ = dir.sync_all();
    }
}

/// The secret's bytes, from the base64 of the answer, in a buffer that is
/// zeroized when dropped (sized up front, so never reallocated).
fn decode_secret(secret: &RecoveredSecret) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    use base64::Engine as _;
    let mut bytes = Zeroizing::new(Vec::with_capacity(base64::decoded_len_estimate(
        secret.secret.len(),
    )));
    // The decoder's error would quote a byte of the secret: not shown.
    base64::engine::general_purpose::STANDARD
        .decode_vec(secret.secret.as_bytes(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("the daemon's answer holds a secret that is not base64"))?;
    Ok(bytes)
}

/// The secret, base64-encoded for the API, from `file` or standard input;
/// every buffer that held it is zeroized. Standard input must not be a
/// terminal: a typed secret would show on screen.
fn read_secret(file: Option<&std::path::Path>) -> anyhow::Result<zeroize::Zeroizing<String>> {
    use base64::Engine as _;
    use std::io::{IsTerminal, Read};
    let mut secret = zeroize::Zeroizing::new(Vec::new());
    match file {
        Some(path) => {
            let mut f = std::fs::File::open(path).map_err(|e| {
                anyhow::anyhow!("cannot read the secret from {}: {e}", path.display())
            })?;
            f.read_to_end(&mut secret)?;
        }
        None if io::stdin().is_terminal() => {
            return Err(UsageError(
                "the secret is read from standard input, which is a terminal; pipe it in \
                 (`sherdctl backup create ... < FILE`) or use --file"
                    .into(),
            )
            .into());
        }
        None => {
            io::stdin().lock().read_to_end(&mut secret)?;
        }
    }
    if secret.is_empty() {
        return Err(UsageError("the secret is empty".into()).into());
    }
    Ok(zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD.encode(secret.as_slice()),
    ))
}

/// Prints events until the user interrupts. The daemon closing the stream
/// (it is stopping) is an error: a follower wants to know its source is gone.
async fn follow(client: &Client, out: &mut Printer<impl Write>) -> anyhow::Result<()> {
    let mut events = client.events().await?;
    while let Some(item) = events.next().await {
        match item? {
            StreamItem::Event(event) => out.event(&event)?,
            StreamItem::Lagged { missed } => {
                out.lagged(missed)?;
                if !out.is_json() {
                    eprintln!("sherdctl: missed {missed} events (this client read too slowly)");
                }
            }
            // A kind of note this version does not know: nothing to show.
            _ => {}
        }
    }
    anyhow::bail!("the daemon closed the event stream (it is stopping)")
}

/// `--socket`, else `--data-dir`/sherdd.sock, else the default data dir's;
/// an empty value counts as not given.
fn socket(global: &Global) -> Result<PathBuf, UsageError> {
    let given =
        |value: &Option<OsString>| value.as_ref().filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(socket) = given(&global.socket) {
        return Ok(socket);
    }
    let dir = given(&global.data_dir)
        .or_else(sherd_api::default_data_dir)
        .ok_or_else(|| {
            UsageError(
                "cannot tell where the daemon's data dir is ($HOME is not set); \
                 pass --data-dir DIR or --socket PATH"
                    .into(),
            )
        })?;
    Ok(dir.join(SOCKET_NAME))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_secret_never_goes_to_a_terminal_unless_shown() {
        let refused = destination(None, false, true).unwrap_err();
        assert!(refused.0.contains("--output FILE"), "{refused}");
        assert!(refused.0.contains("--show"), "{refused}");
        assert_eq!(destination(None, true, true).unwrap(), Destination::Stdout);
        assert_eq!(
            destination(None, false, false).unwrap(),
            Destination::Stdout
        );
        assert_eq!(destination(None, true, false).unwrap(), Destination::Stdout);
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("secret");
        for terminal in [false, true] {
            assert_eq!(
                destination(Some(new.clone()), false, terminal).unwrap(),
                Destination::File(new.clone())
            );
        }
    }

    #[test]
    fn an_existing_file_is_refused_before_anything_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let taken = dir.path().join("taken");
        std::fs::write(&taken, b"keep me").unwrap();
        let err = destination(Some(taken.clone()), false, false).unwrap_err();
        assert_eq!(
            err.0,
            format!(
                "{} exists; the secret is only written to a new file, name another",
                taken.display()
            )
        );
        // A dangling symlink counts as taken: following it would write
        // somewhere the user did not name.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
        assert!(destination(Some(link), false, false).is_err());
        // So is a file that could not be created, rather than after the wait.
        let lost = dir.path().join("no/such/dir/secret");
        let err = destination(Some(lost), false, false).unwrap_err();
        assert!(err.0.ends_with("/no/such/dir is not a directory"), "{err}");
        assert_eq!(
            destination(Some("relative".into()), false, false).unwrap(),
            Destination::File("relative".into())
        );
    }

    #[test]
    fn the_secret_file_is_new_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let mut file = create_secret_file(&path).unwrap();
        file.write_all(b"s").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = create_secret_file(&path).unwrap_err();
        assert!(again.downcast_ref::<UsageError>().is_some(), "{again}");
        assert_eq!(std::fs::read(&path).unwrap(), b"s");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("target"), &link).unwrap();
        assert!(create_secret_file(&link).is_err());
        assert!(!dir.path().join("target").exists());
    }

    fn recovery(backup: &str, state: &str) -> Recovery {
        Recovery {
            backup: backup.into(),
            owner: "O".into(),
            kind: "owner".into(),
            shards: 0,
            threshold: None,
            state: state.into(),
            requests: vec![],
            rejected: vec![],
            denied: vec![],
            reason: None,
        }
    }

    #[test]
    fn recover_without_a_backup_takes_the_one_in_progress() {
        let one = [
            recovery("b1", "delivered"),
            recovery("b2", "collecting"),
            recovery("b3", "failed"),
        ];
        assert_eq!(in_progress(&one).unwrap(), "b2");
        assert_eq!(in_progress(&[recovery("b1", "complete")]).unwrap(), "b1");
        let none = in_progress(&[]).unwrap_err();
        assert!(none.0.starts_with("no recovery on this node"), "{none}");
        let over = in_progress(&[recovery("b1", "delivered")]).unwrap_err();
        assert_eq!(
            over.0,
            "no recovery in progress on this node (b1 delivered); start one with \
             `sherdctl request-recovery`"
        );
        let several =
            in_progress(&[recovery("b1", "collecting"), recovery("b2", "complete")]).unwrap_err();
        assert_eq!(
            several.0,
            "2 recoveries are in progress (b1 collecting, b2 complete); name one: \
             `sherdctl recover BACKUP`"
        );
    }

    #[test]
    fn the_secret_is_decoded_without_quoting_it() {
        let secret = |b64: &str| RecoveredSecret {
            backup: "b".into(),
            label: "l".into(),
            secret: Zeroizing::new(b64.into()),
        };
        assert_eq!(
            decode_secret(&secret("bXkgc2VlZA==")).unwrap().as_slice(),
            b"my seed"
        );
        let err = decode_secret(&secret("bXk*c2VlZA==")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the daemon's answer holds a secret that is not base64"
        );
    }
}
