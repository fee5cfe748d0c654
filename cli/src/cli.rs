//! The command line as clap types: every flag, command and help text of
//! `sherdctl`. Parsing only: nothing here talks to the daemon or prints.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};

/// The exit statuses, shown at the end of `--help` (and in `main.rs`).
const EXIT_STATUS: &str = "\
Exit status:
  0  success
  1  the daemon refused the request (bad input, unknown contact, conflict)
  2  usage error (bad arguments, or no data dir to find the socket in)
  3  the daemon is unreachable (not running at the socket)
  4  anything else (the daemon failed, an unexpected answer, a timeout, a failed recovery)";

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
    /// List the backups this node may ask for as a trustee (emergency access)
    Grants,
    /// Ask custodians for the shards of a backup
    ///
    /// Two shapes. The owner, on its own node: `request-recovery BACKUP` asks
    /// every custodian of BACKUP to send its shard back. A trustee, the same
    /// way, for a backup it was granted emergency access to (`sherdctl
    /// grants`): the owner is told and may veto during the backup's veto
    /// window, after which the custodians release. A custodian, for an
    /// owner who lost its device: `request-recovery --owner OLD --to NEW`
    /// forwards this node's own shard to NEW (the owner's new identity, which
    /// you verified with them) and asks the co-custodians to do the same; add
    /// --backup when this node holds shards of more than one of OLD's backups.
    #[command(name = "request-recovery")]
    RequestRecovery(RequestRecoveryArgs),
    /// List recovery requests: made here, asked of this node, or bringing shards to it
    Requests,
    /// Release this node's shard for a recovery request
    ///
    /// As the owner, for a trustee's emergency request: end the veto window
    /// now, so that your custodians may release without waiting.
    Approve {
        /// The request id (32 hex characters, from `sherdctl requests`)
        request: String,
        /// The requester's feed id, if the daemon says the id is ambiguous
        #[arg(long, value_name = "FEED")]
        from: Option<String>,
    },
    /// Refuse a recovery request; the requester is told
    ///
    /// As the owner, for a trustee's emergency request: veto it, for good;
    /// your custodians and the trustee are told.
    Deny {
        /// The request id (32 hex characters, from `sherdctl requests`)
        request: String,
        /// Why, told to the requester (at most 1024 bytes)
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// The requester's feed id, if the daemon says the id is ambiguous
        #[arg(long, value_name = "FEED")]
        from: Option<String>,
    },
    /// Release this node's shard for a lost-device request, only to NEW
    ///
    /// Like `approve`, but nothing is released unless the request sends the
    /// shard to NEW: the new identity you checked with the owner out of band
    /// (in person, or by a call in which you recognise them).
    Forward {
        /// The request id (32 hex characters, from `sherdctl requests`)
        request: String,
        /// The owner's new feed id, as verified with them
        #[arg(long, value_name = "NEW")]
        to: String,
        /// The requester's feed id, if the daemon says the id is ambiguous
        #[arg(long, value_name = "FEED")]
        from: Option<String>,
    },
    /// Wait for the shards of a recovery, then write the secret
    ///
    /// Progress goes to standard error. The secret is written once: the
    /// daemon forgets it as it hands it over. It goes to --output (a new
    /// file, mode 0600; an existing file is never overwritten) or to standard
    /// output, which must not be a terminal unless --show is given. Without
    /// BACKUP, the one recovery in progress on this node is used.
    Recover {
        /// The backup id (64 hex characters) [default: the only recovery in progress]
        backup: Option<String>,
        /// Write the secret to this new file (mode 0600) instead of standard output
        #[arg(long, value_name = "FILE", conflicts_with = "show")]
        output: Option<PathBuf>,
        /// Print the secret even though standard output is a terminal
        #[arg(long)]
        show: bool,
        /// Give up after this many seconds (exit status 4); the recovery goes on in the daemon [default: wait until done]
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
        timeout: Option<u64>,
    },
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
        /// Approve its recovery requests without asking
        #[arg(long)]
        auto_approve: bool,
    },
    /// List contacts
    List,
    /// Approve a contact's recovery requests without asking (on), or not (off)
    #[command(name = "auto-approve")]
    AutoApprove {
        /// The contact's feed id
        feed: String,
        /// on: approve without asking; off: wait for `sherdctl approve`
        #[arg(value_name = "on|off", action = clap::ArgAction::Set,
              value_parser = clap::builder::PossibleValuesParser::new(["on", "off"])
                  .map(|v| v == "on"))]
        enabled: bool,
    },
    /// Stop following a contact's feed
    Remove {
        /// The contact's feed id
        feed: String,
    },
}

/// The arguments of `request-recovery`, as typed; [`RequestRecoveryArgs::shape`]
/// says which of the two requests they make.
#[derive(Debug, Args)]
pub(crate) struct RequestRecoveryArgs {
    /// Your own backup to recover, or one you are a trustee of (64 hex characters)
    pub(crate) backup: Option<String>,
    /// Lost device: the owner's old feed id
    #[arg(long, value_name = "OLD")]
    pub(crate) owner: Option<String>,
    /// Lost device: the owner's new feed id, where the shards go
    #[arg(long, value_name = "NEW")]
    pub(crate) to: Option<String>,
    /// Lost device: which of OLD's backups, if this node holds shards of several
    #[arg(long = "backup", value_name = "BACKUP")]
    pub(crate) backup_of_owner: Option<String>,
}

/// The two requests `request-recovery` can make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecoveryShape {
    /// The owner asks the custodians of its own backup.
    Owner { backup: String },
    /// A custodian asks for an owner who lost its device.
    LostDevice {
        owner: String,
        to: String,
        backup: Option<String>,
    },
}

impl RequestRecoveryArgs {
    /// Which request these arguments make, or what is wrong with them: the
    /// shapes are exclusive, and clap alone would explain a mix of them
    /// poorly.
    pub(crate) fn shape(self) -> Result<RecoveryShape, String> {
        const SHAPES: &str = "give either BACKUP (to recover your own backup, or one you \
             are a trustee of) or --owner OLD --to NEW [--backup BACKUP] (on a custodian's \
             node, for an owner who lost their device)";
        match self {
            Self {
                backup: Some(backup),
                owner: None,
                to: None,
                backup_of_owner: None,
            } => Ok(RecoveryShape::Owner { backup }),
            Self {
                backup: None,
                owner: Some(owner),
                to: Some(to),
                backup_of_owner,
            } => Ok(RecoveryShape::LostDevice {
                owner,
                to,
                backup: backup_of_owner,
            }),
            Self {
                backup: Some(_),
                owner: Some(_),
                ..
            }
            | Self {
                backup: Some(_),
                to: Some(_),
                ..
            }
            | Self {
                backup: Some(_),
                backup_of_owner: Some(_),
                ..
            } => Err(format!(
                "BACKUP and --owner/--to/--backup do not go together; {SHAPES}"
            )),
            Self {
                owner: Some(_),
                to: None,
                ..
            } => Err(format!(
                "--owner needs --to NEW, the owner's new feed id; {SHAPES}"
            )),
            Self {
                owner: None,
                to: Some(_),
                ..
            } => Err(format!(
                "--to needs --owner OLD, the owner's old feed id; {SHAPES}"
            )),
            Self {
                backup_of_owner: Some(_),
                ..
            } => Err(
                "--backup goes with --owner and --to; to recover your own backup, \
                      give it alone: `sherdctl request-recovery BACKUP`"
                    .into(),
            ),
            Self { .. } => Err(format!("nothing to recover: {SHAPES}")),
        }
    }
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
    ///
    /// Emergency access: each --trustee (a contact, not a custodian) may ask
    /// the custodians for the secret. You are told, and have the veto window
    /// (--veto-delay, 72h unless given) to refuse with `sherdctl deny
    /// REQUEST`; then each custodian releases its shard when its user
    /// approves (--release approve) or on its own (--release auto). These
    /// terms are signed into the shards: they cannot change later. The
    /// policy flags need at least one --trustee.
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
        /// A trustee's feed id: may ask for the secret in an emergency (repeat for each, up to 8)
        #[arg(long = "trustee", value_name = "FEED")]
        trustees: Vec<String>,
        /// How long you have to veto a trustee's request: 90s, 30m, 72h, 3d, or seconds; at most 365d [default: 72h]
        #[arg(long, value_name = "DURATION", requires = "trustees", value_parser = veto_delay)]
        veto_delay: Option<u32>,
        /// Erase every copy once a trustee has seen the secret
        #[arg(long, requires = "trustees")]
        one_time: bool,
        /// After the veto window: each custodian's user approves the release, or the node releases on its own [default: approve]
        #[arg(long, value_name = "approve|auto", requires = "trustees",
              value_parser = clap::builder::PossibleValuesParser::new(["approve", "auto"]))]
        release: Option<String>,
    },
    /// List this node's backups, with how many custodians acknowledged
    List,
    /// Show a backup and each custodian's acknowledgement
    Show {
        /// The backup id (64 hex characters)
        id: String,
    },
    /// Revoke a backup: every custodian erases its shard and says so
    ///
    /// Nothing can be recovered from a revoked backup afterwards; `backup
    /// show` lists which custodians have erased their shard.
    Revoke {
        /// The backup id (64 hex characters)
        id: String,
    },
    /// Back a secret up anew with other custodians or another threshold, and
    /// revoke the old backup in the same step
    ///
    /// You give the secret again (standard input, or --file). The new backup
    /// keeps the old one's label, trustees and emergency policy unless you
    /// say otherwise; the old backup's custodians erase their shards.
    Reshare {
        /// The backup to replace (64 hex characters)
        id: String,
        /// A custodian of the new backup (repeat for each, 1 to 32)
        #[arg(long = "custodian", value_name = "FEED", required = true)]
        custodians: Vec<String>,
        /// How many custodians must cooperate to recover the secret
        #[arg(long, value_name = "T")]
        threshold: u8,
        /// Read the secret from this file instead of standard input
        #[arg(long, value_name = "PATH")]
        file: Option<std::path::PathBuf>,
        /// A new label [default: the old backup's]
        #[arg(long)]
        label: Option<String>,
        /// A trustee of the new backup (repeat for each; replaces the old backup's list)
        #[arg(long = "trustee", value_name = "FEED")]
        trustees: Vec<String>,
        /// How long you have to veto a trustee's request [default: the old backup's]
        #[arg(long, value_name = "DURATION", value_parser = veto_delay)]
        veto_delay: Option<u32>,
        /// Erase every copy once a trustee has seen the secret [default: as the old backup]
        #[arg(long)]
        one_time: bool,
        /// After the veto window: approve or auto [default: the old backup's]
        #[arg(long, value_name = "approve|auto",
              value_parser = clap::builder::PossibleValuesParser::new(["approve", "auto"]))]
        release: Option<String>,
    },
}

/// The longest veto window: a year, the protocol's limit on
/// `veto_delay_secs` (PROTOCOL.md 7.1).
const VETO_DELAY_MAX_SECS: u64 = 365 * 86_400;

/// A veto window as typed: a number of seconds, minutes, hours or days
/// (`90s`, `30m`, `72h`, `3d`; a bare number is seconds), at most a year.
/// The error is clap's message after "invalid value '...' for '--veto-delay'".
fn veto_delay(text: &str) -> Result<u32, String> {
    const FORMS: &str = "write a number and a unit: 90s, 30m, 72h or 3d (a bare number is seconds)";
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let unit_secs: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(FORMS.into()),
    };
    if digits.is_empty() {
        return Err(FORMS.into());
    }
    let too_long = || format!("at most 365d (a year, {VETO_DELAY_MAX_SECS} seconds)");
    // Only ASCII digits are left, so the parse fails only by overflowing,
    // which is too long too.
    let count: u64 = digits.parse().map_err(|_| too_long())?;
    count
        .checked_mul(unit_secs)
        .filter(|&secs| secs <= VETO_DELAY_MAX_SECS)
        .and_then(|secs| u32::try_from(secs).ok())
        .ok_or_else(too_long)
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

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("sherdctl").chain(args.iter().copied()))
            .unwrap()
            .command
    }

    fn shape(args: &[&str]) -> Result<RecoveryShape, String> {
        let mut all = vec!["request-recovery"];
        all.extend_from_slice(args);
        match parse(&all) {
            Command::RequestRecovery(args) => args.shape(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn request_recovery_takes_one_of_two_shapes() {
        assert_eq!(
            shape(&["B"]),
            Ok(RecoveryShape::Owner { backup: "B".into() })
        );
        assert_eq!(
            shape(&["--owner", "OLD", "--to", "NEW"]),
            Ok(RecoveryShape::LostDevice {
                owner: "OLD".into(),
                to: "NEW".into(),
                backup: None
            })
        );
        assert_eq!(
            shape(&["--to", "NEW", "--backup", "B", "--owner", "OLD"]),
            Ok(RecoveryShape::LostDevice {
                owner: "OLD".into(),
                to: "NEW".into(),
                backup: Some("B".into())
            })
        );
        let refused: &[(&[&str], &str)] = &[
            (&[], "nothing to recover: give either BACKUP"),
            (
                &["B", "--owner", "OLD", "--to", "NEW"],
                "do not go together",
            ),
            (&["B", "--to", "NEW"], "do not go together"),
            (&["B", "--backup", "C"], "do not go together"),
            (&["--owner", "OLD"], "--owner needs --to NEW"),
            (
                &["--owner", "OLD", "--backup", "B"],
                "--owner needs --to NEW",
            ),
            (&["--to", "NEW"], "--to needs --owner OLD"),
            (&["--backup", "B"], "`sherdctl request-recovery BACKUP`"),
        ];
        for (args, expected) in refused {
            let err = shape(args).unwrap_err();
            assert!(err.contains(expected), "{args:?}: {err}");
        }
    }

    #[test]
    fn auto_approve_is_on_or_off() {
        for (word, expected) in [("on", true), ("off", false)] {
            match parse(&["contacts", "auto-approve", "F", word]) {
                Command::Contacts(ContactsCommand::AutoApprove { feed, enabled }) => {
                    assert_eq!((feed.as_str(), enabled), ("F", expected));
                }
                other => panic!("{other:?}"),
            }
        }
        for word in ["yes", "true", "ON", "1"] {
            let err = Cli::try_parse_from(["sherdctl", "contacts", "auto-approve", "F", word])
                .unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue, "{word}");
        }
        match parse(&["contacts", "add", "F", "--name", "a", "--auto-approve"]) {
            Command::Contacts(ContactsCommand::Add { auto_approve, .. }) => assert!(auto_approve),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn recover_flags() {
        match parse(&["recover"]) {
            Command::Recover {
                backup,
                output,
                show,
                timeout,
            } => assert_eq!((backup, output, show, timeout), (None, None, false, None)),
            other => panic!("{other:?}"),
        }
        match parse(&["recover", "B", "--output", "f", "--timeout", "30"]) {
            Command::Recover {
                backup,
                output,
                timeout,
                ..
            } => {
                assert_eq!(backup.as_deref(), Some("B"));
                assert_eq!(output, Some(PathBuf::from("f")));
                assert_eq!(timeout, Some(30));
            }
            other => panic!("{other:?}"),
        }
        let refused: &[&[&str]] = &[
            &["sherdctl", "recover", "--output", "f", "--show"],
            &["sherdctl", "recover", "--timeout", "0"],
            &["sherdctl", "recover", "--timeout", "-1"],
            &["sherdctl", "recover", "A", "B"],
        ];
        for args in refused {
            assert!(Cli::try_parse_from(*args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn veto_delays_in_seconds_minutes_hours_or_days() {
        let accepted = [
            ("90s", 90),
            ("90", 90),
            ("0", 0),
            ("30m", 1800),
            ("72h", 259_200),
            ("3d", 259_200),
            ("007h", 25_200),
            ("365d", 31_536_000),
            ("8760h", 31_536_000),
            ("31536000", 31_536_000),
        ];
        for (text, secs) in accepted {
            assert_eq!(veto_delay(text), Ok(secs), "{text}");
        }
        let forms = "write a number and a unit: 90s, 30m, 72h or 3d (a bare number is seconds)";
        let too_long = "at most 365d (a year, 31536000 seconds)";
        let refused = [
            ("", forms),
            ("h", forms),
            ("3w", forms),
            ("3 d", forms),
            ("3D", forms),
            ("1.5h", forms),
            ("-1", forms),
            ("+5", forms),
            ("3dd", forms),
            ("3h30m", forms),
            (" 3d", forms),
            ("٣d", forms),
            ("366d", too_long),
            ("8761h", too_long),
            ("31536001", too_long),
            ("99999999999999999999999d", too_long),
            ("18446744073709551615d", too_long),
        ];
        for (text, expected) in refused {
            assert_eq!(veto_delay(text), Err(expected.to_owned()), "{text:?}");
        }
    }

    fn create(extra: &[&str]) -> Result<Command, clap::Error> {
        let base = [
            "sherdctl",
            "backup",
            "create",
            "--label",
            "l",
            "--custodian",
            "C",
            "--threshold",
            "1",
        ];
        Cli::try_parse_from(base.iter().chain(extra)).map(|cli| cli.command)
    }

    #[test]
    fn backup_create_takes_trustees_and_their_terms() {
        match create(&[]).unwrap() {
            Command::Backup(BackupCommand::Create {
                trustees,
                veto_delay,
                one_time,
                release,
                ..
            }) => assert_eq!(
                (trustees, veto_delay, one_time, release),
                (vec![], None, false, None)
            ),
            other => panic!("{other:?}"),
        }
        let args = [
            "--trustee",
            "T1",
            "--veto-delay",
            "3d",
            "--trustee",
            "T2",
            "--one-time",
            "--release",
            "auto",
        ];
        match create(&args).unwrap() {
            Command::Backup(BackupCommand::Create {
                trustees,
                veto_delay,
                one_time,
                release,
                ..
            }) => {
                assert_eq!(trustees, ["T1", "T2"]);
                assert_eq!(veto_delay, Some(259_200));
                assert!(one_time);
                assert_eq!(release.as_deref(), Some("auto"));
            }
            other => panic!("{other:?}"),
        }
        // The terms mean nothing without a trustee: asking for them alone is
        // a mistake to point out, not a setting to sign in silently.
        for alone in [
            &["--veto-delay", "1h"][..],
            &["--one-time"],
            &["--release", "approve"],
        ] {
            let err = create(alone).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{alone:?}"
            );
            assert!(err.to_string().contains("--trustee <FEED>"), "{err}");
        }
        for (args, kind) in [
            (
                &["--trustee", "T", "--release", "sometimes"][..],
                clap::error::ErrorKind::InvalidValue,
            ),
            (
                &["--trustee", "T", "--veto-delay", "2w"],
                clap::error::ErrorKind::ValueValidation,
            ),
            (
                &["--trustee", "T", "--veto-delay", "366d"],
                clap::error::ErrorKind::ValueValidation,
            ),
        ] {
            assert_eq!(create(args).unwrap_err().kind(), kind, "{args:?}");
        }
    }

    #[test]
    fn grants_takes_no_argument() {
        assert!(matches!(parse(&["grants"]), Command::Grants));
        assert!(Cli::try_parse_from(["sherdctl", "grants", "x"]).is_err());
    }
}
