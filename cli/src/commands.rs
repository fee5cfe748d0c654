//! The work of each command: find the socket, make one call (or follow the
//! event stream) through `sherd_api::Client`, hand the answer to the printer.
//!
//! Nothing here decides an exit status or prints an error (that is
//! `main.rs`), and nothing validates what the daemon validates: a bad feed id
//! or name is sent as typed and the daemon's refusal is shown.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;

use sherd_api::{AuditQuery, Client, SOCKET_NAME, StreamItem};

use crate::cli::{BackupCommand, Command, ContactsCommand, Global};
use crate::output::Printer;

/// A usage problem found after parsing (exit status 2, like clap's).
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

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
        Command::Contacts(ContactsCommand::Add { feed, name }) => {
            out.contact_added(&client.add_contact(&feed, &name).await?)?;
        }
        Command::Contacts(ContactsCommand::List) => out.contacts(&client.contacts().await?)?,
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
        }) => {
            let request = sherd_api::CreateBackup {
                label,
                threshold,
                custodians,
                secret: read_secret(file.as_deref())?,
            };
            out.backup(&client.create_backup(&request).await?)?;
        }
        Command::Backup(BackupCommand::List) => out.backups(&client.backups().await?)?,
        Command::Backup(BackupCommand::Show { id }) => out.backup(&client.backup(&id).await?)?,
        Command::Shards => out.shards(&client.shards().await?)?,
    }
    Ok(())
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
