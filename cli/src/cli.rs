//! The command line as clap types: every flag, command and help text of
//! `sherdctl`. Parsing only: nothing here talks to the daemon or prints.

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};

/// The exit statuses, shown at the end of `--help` (and in `main.rs`).
const EXIT_STATUS: &str = "\
Exit status:
  0  success
  1  the daemon refused the request (bad input, unknown contact, conflict)
  2  usage error (bad arguments, or no data dir to find the socket in)
  3  the daemon is unreachable (not running at the socket)
  4  anything else (the daemon failed, an unexpected answer, a timeout)";

/// sherdctl: control a running sherd node (sherdd) through its socket.
#[derive(Debug, Parser)]
#[command(name = "sherdctl", version, after_help = EXIT_STATUS)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    // Both paths are taken as raw strings so that an empty value (say, an
    // exported but empty SHERD_SOCKET) means "not set" rather than a usage
    // error; `commands::socket` does the choosing.
    /// The daemon's control socket [default: DIR/sherdd.sock, DIR from --data-dir]
    #[arg(long, global = true, env = "SHERD_SOCKET", value_name = "PATH",
          value_parser = clap::builder::OsStringValueParser::new())]
    pub(crate) socket: Option<OsString>,

    /// The daemon's data dir [default: $XDG_DATA_HOME/sherd or ~/.local/share/sherd]
    #[arg(long, global = true, env = "SHERD_DATA_DIR", value_name = "DIR",
          value_parser = clap::builder::OsStringValueParser::new())]
    pub(crate) data_dir: Option<OsString>,

    /// Print JSON (one document, or one object per line for `events`)
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print this node's feed id (which is also its peer id)
    Id,
    /// Show the node's feed id, addresses, peers and replicated feeds
    Status,
    /// List the peers connected now
    Peers,
    /// Connect to a peer
    Connect {
        /// Where to dial, for example /ip4/192.0.2.7/tcp/4001
        multiaddr: String,
    },
    /// Add, list or remove contacts (local names for feed ids)
    #[command(subcommand)]
    Contacts(ContactsCommand),
    /// Back up a secret with custodians; list and show backups
    #[command(subcommand)]
    Backup(BackupCommand),
    /// List the shards this node holds for others
    Shards,
    /// Print the node's events as they happen, until interrupted
    ///
    /// The daemon keeps no event history (the audit log has the past), so
    /// --follow is required; without it there would be nothing to print.
    Events {
        /// Follow the stream (required)
        #[arg(short, long, required = true)]
        follow: bool,
    },
    /// Print the audit log, oldest first
    Audit {
        /// The first record to print
        #[arg(long, value_name = "SEQ", default_value_t = 0)]
        from: u64,
        /// How many records at most (1 to 1000)
        #[arg(long, value_name = "N", default_value_t = 100,
              value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ContactsCommand {
    /// Follow a feed under a local name
    Add {
        /// The contact's feed id (12D3KooW...)
        feed: String,
        /// The name to give it (1 to 64 characters)
        #[arg(long)]
        name: String,
    },
    /// List contacts
    List,
    /// Stop following a contact's feed
    Remove {
        /// The contact's feed id
        feed: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BackupCommand {
    /// Back up a secret read from standard input (or --file)
    ///
    /// The secret is never taken from an argument (it would land in the
    /// shell's history) nor typed at a terminal (it would show on screen):
    /// pipe it in, for example `sherdctl backup create ... < seed.txt`.
    /// Every custodian must be a contact; each gets one shard and
    /// acknowledges it once its node has verified it.
    Create {
        /// What the secret is, in your words (1 to 256 bytes); stored encrypted
        #[arg(long)]
        label: String,
        /// A custodian's feed id (repeat for each, 1 to 32)
        #[arg(long = "custodian", value_name = "FEED", required = true)]
        custodians: Vec<String>,
        /// How many custodians must cooperate to recover the secret
        #[arg(long, value_name = "T")]
        threshold: u8,
        /// Read the secret from this file instead of standard input
        #[arg(long, value_name = "PATH")]
        file: Option<std::path::PathBuf>,
    },
    /// List this node's backups, with how many custodians acknowledged
    List,
    /// Show a backup and each custodian's acknowledgement
    Show {
        /// The backup id (64 hex characters)
        id: String,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_audit_limit_matches_the_api() {
        let max = sherd_api::AUDIT_LIMIT_MAX.to_string();
        let default = sherd_api::AUDIT_LIMIT_DEFAULT.to_string();
        assert!(Cli::try_parse_from(["sherdctl", "audit", "--limit", &max]).is_ok());
        let over = (sherd_api::AUDIT_LIMIT_MAX + 1).to_string();
        assert!(Cli::try_parse_from(["sherdctl", "audit", "--limit", &over]).is_err());
        let cli = Cli::try_parse_from(["sherdctl", "audit"]).unwrap();
        match cli.command {
            Command::Audit { limit, .. } => assert_eq!(limit.to_string(), default),
            other => panic!("{other:?}"),
        }
    }
}
