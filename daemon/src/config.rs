//! sherdd's configuration: a TOML file with documented defaults, overridden
//! by environment variables and flags (flags win, then `SHERD_*` variables,
//! then the file, then the defaults).
//!
//! ```toml
//! # Where the key, the store and the control socket live.
//! # Default: $XDG_DATA_HOME/sherd, else ~/.local/share/sherd.
//! # data_dir = "/var/lib/sherd"
//!
//! # A file holding the passphrase that seals the identity key (mode 0600).
//! # SHERD_PASSPHRASE works too; on a terminal, sherdd asks.
//! # passphrase_file = "/run/secrets/sherd"
//!
//! # tracing filter, as RUST_LOG (which wins when set).
//! log = "info"
//!
//! # Recovery requests this node takes per requester and backup in any 24
//! # hours; more are ignored (and audited).
//! requests_per_day = 3
//!
//! # Durations are a number and a unit: 90s, 30m, 12h, 7d.
//! # How long a recovery request stays open (after its veto window, for an
//! # emergency request): this node's own requests, and the longest it keeps
//! # another's.
//! request_expiry = "30d"
//! # How often this node asks each custodian of its backups to prove it
//! # still holds its shard.
//! health_check_interval = "7d"
//! # A custodian with no proof for this long is reported silent.
//! custodian_silent_after = "30d"
//!
//! [network]
//! # Addresses to listen on. The default takes every interface on port 7411;
//! # use /ip4/127.0.0.1/tcp/0 to stay on this machine.
//! listen = ["/ip4/0.0.0.0/tcp/7411"]
//! # Peers to dial at start.
//! bootstrap = []
//! # Announce and discover peers on the local network. Off unless you choose
//! # the network: a node never announces itself where its user did not ask.
//! mdns = false
//! # Established connections at most.
//! max_connections = 128
//!
//! [notify]
//! # Which events notify, by their names on the event stream (`sherdctl
//! # events`). "default" stands for what a person must act on or know of:
//! # request_received, release_due, shard_released, request_denied,
//! # recovery_complete, recovery_failed, shard_erased, revoke_acked,
//! # grant_received, peer_blocked and lagged (the notifier missed events).
//! # "all" is every event. Nothing is sent until a notifier is configured.
//! events = ["default"]
//!
//! # A command run for each notification, with it as one JSON object on one
//! # line of stdin (repeat the table for several). argv is run as is, with no
//! # shell; logs name only its program, as its arguments may hold a token.
//! # It is killed after timeout_secs (1 to 3600); its exit status and the
//! # end of its stderr are logged. Default: no command.
//! # [[notify.command]]
//! # argv = ["/usr/local/bin/sherd-notify", "--to", "me"]
//! # timeout_secs = 10
//!
//! # E-mail over SMTP, one mail per notification. Default: none.
//! # tls: "starttls" (the default: STARTTLS required, port 587), "tls" (TLS
//! # from the start, port 465) or "none" (port 25; allowed only for a server
//! # on this machine: localhost, 127.0.0.1, ::1). port defaults by tls.
//! # to: 1 to 32 addresses. username and password_file go together, or
//! # neither; the file is read at start and, like the key, must be readable
//! # by its owner only (chmod 600), else sherdd refuses to start.
//! # [notify.smtp]
//! # host = "smtp.example.org"
//! # port = 587
//! # tls = "starttls"
//! # from = "sherd <sherd@example.org>"
//! # to = ["me@example.org"]
//! # username = "sherd@example.org"
//! # password_file = "/etc/sherd/smtp-password"
//! ```
//!
//! The file is `--config PATH` (`SHERD_CONFIG`), else `config.toml` in the
//! data dir if there is one. Unknown keys are an error, so a typo does not
//! silently leave a default in place.

use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use libp2p::Multiaddr;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::keys;
use crate::net::NetworkConfig;
use crate::notify::{
    self, CommandConfig, NotifyConfig, Selection, SmtpConfig, SmtpCredentials, SmtpPassword,
    SmtpTls,
};

/// The name of the config file looked for in the data dir.
pub const CONFIG_FILE_NAME: &str = "config.toml";
/// The default listen address.
pub const DEFAULT_LISTEN: &str = "/ip4/0.0.0.0/tcp/7411";

/// Why the configuration is unusable.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key and line.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("config `{key}`: {message}")]
    Invalid {
        /// The key, such as `network.listen`.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No data dir was given and none can be derived ($HOME unset).
    #[error("no data dir: set --data-dir or SHERD_DATA_DIR (HOME and XDG_DATA_HOME are unset)")]
    NoDataDir,
}

/// The file's contents; every field optional, defaults applied later.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    passphrase_file: Option<PathBuf>,
    log: Option<String>,
    /// Recovery requests taken per requester and backup in 24 hours.
    requests_per_day: Option<u32>,
    request_expiry: Option<String>,
    health_check_interval: Option<String>,
    custodian_silent_after: Option<String>,
    #[serde(default)]
    network: FileNetwork,
    #[serde(default)]
    notify: FileNotify,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNetwork {
    listen: Option<Vec<String>>,
    bootstrap: Option<Vec<String>>,
    mdns: Option<bool>,
    max_connections: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNotify {
    events: Option<Vec<String>>,
    #[serde(default)]
    command: Vec<FileCommand>,
    smtp: Option<FileSmtp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCommand {
    argv: Vec<String>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSmtp {
    host: String,
    port: Option<u16>,
    tls: Option<String>,
    from: String,
    to: Vec<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
}

/// The longest SMTP password file accepted.
const MAX_PASSWORD_LEN: usize = 1024;
/// Recipients of notification mail at most.
const MAX_MAIL_RECIPIENTS: usize = 32;

/// What the command line and environment say (each `None` when not given).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config` / `SHERD_CONFIG`.
    pub config: Option<PathBuf>,
    /// `--data-dir` / `SHERD_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--listen` / `SHERD_LISTEN`.
    pub listen: Vec<String>,
    /// `--bootstrap` / `SHERD_BOOTSTRAP`.
    pub bootstrap: Vec<String>,
    /// `--mdns` / `SHERD_MDNS`.
    pub mdns: Option<bool>,
    /// `--passphrase-file` / `SHERD_PASSPHRASE_FILE`.
    pub passphrase_file: Option<PathBuf>,
}

/// The configuration in force.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the key, the store and the socket live.
    pub data_dir: PathBuf,
    /// The passphrase file, if any.
    pub passphrase_file: Option<PathBuf>,
    /// The tracing filter.
    pub log: String,
    /// The network settings.
    pub network: NetworkConfig,
    /// The protocol engine's settings (test hooks only, for now: never set
    /// from the config file or the environment).
    pub engine: crate::engine::EngineOptions,
}

impl Config {
    /// The store's file.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("store.redb")
    }

    /// The control socket.
    pub fn socket_path(&self) -> PathBuf {
        self.data_dir.join(sherd_api::SOCKET_NAME)
    }

    /// Resolves the configuration from overrides, the file and the defaults.
    /// `default_data_dir` is the XDG default (passed in so tests do not read
    /// the process environment).
    pub fn resolve(
        overrides: Overrides,
        default_data_dir: Option<PathBuf>,
    ) -> Result<Self, ConfigError> {
        Self::resolve_with_notify(overrides, default_data_dir).map(|(config, _)| config)
    }

    /// [`Config::resolve`], and the file's `[notify]` section (validated,
    /// its password file read). The notifiers' settings come back beside
    /// the `Config`, not in it: the node never uses them, only sherdd's
    /// main loop, which starts the notifiers.
    pub fn resolve_with_notify(
        overrides: Overrides,
        default_data_dir: Option<PathBuf>,
    ) -> Result<(Self, NotifyConfig), ConfigError> {
        // The data dir decides where the default config file is, so it is
        // settled first from what does not need the file.
        let early_dir = overrides
            .data_dir
            .clone()
            .or_else(|| default_data_dir.clone());
        let file_path = overrides.config.clone().or_else(|| {
            early_dir
                .as_ref()
                .map(|d| d.join(CONFIG_FILE_NAME))
                .filter(|p| p.is_file())
        });
        let file = match &file_path {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };

        let data_dir = overrides
            .data_dir
            .or(file.data_dir)
            .or(default_data_dir)
            .ok_or(ConfigError::NoDataDir)?;
        let listen = if overrides.listen.is_empty() {
            file.network
                .listen
                .unwrap_or_else(|| vec![DEFAULT_LISTEN.to_owned()])
        } else {
            overrides.listen
        };
        let bootstrap = if overrides.bootstrap.is_empty() {
            file.network.bootstrap.unwrap_or_default()
        } else {
            overrides.bootstrap
        };
        let max_connections = file.network.max_connections.unwrap_or(128);
        if !(1..=10_000).contains(&max_connections) {
            return Err(ConfigError::Invalid {
                key: "network.max_connections",
                message: format!("must be 1 to 10000, got {max_connections}"),
            });
        }
        let network = NetworkConfig {
            listen: parse_addrs("network.listen", &listen)?,
            bootstrap: parse_addrs("network.bootstrap", &bootstrap)?,
            mdns: overrides.mdns.or(file.network.mdns).unwrap_or(false),
            max_connections,
            ..NetworkConfig::default()
        };
        if network.listen.is_empty() {
            return Err(ConfigError::Invalid {
                key: "network.listen",
                message: "needs at least one address".into(),
            });
        }
        let notify = notify_config(file.notify)?;
        let config = Self {
            data_dir,
            passphrase_file: overrides.passphrase_file.or(file.passphrase_file),
            log: file.log.unwrap_or_else(|| "info".to_owned()),
            network,
            engine: crate::engine::EngineOptions {
                requests_per_day: file
                    .requests_per_day
                    .unwrap_or(crate::engine::DEFAULT_REQUESTS_PER_DAY),
                request_ttl_ms: duration_ms(
                    "request_expiry",
                    file.request_expiry.as_deref(),
                    crate::engine::DEFAULT_REQUEST_TTL_MS,
                )?,
                health_check_interval_ms: duration_ms(
                    "health_check_interval",
                    file.health_check_interval.as_deref(),
                    crate::engine::DEFAULT_HEALTH_CHECK_INTERVAL_MS,
                )?,
                custodian_silent_after_ms: duration_ms(
                    "custodian_silent_after",
                    file.custodian_silent_after.as_deref(),
                    crate::engine::DEFAULT_CUSTODIAN_SILENT_AFTER_MS,
                )?,
                ..crate::engine::EngineOptions::default()
            },
        };
        Ok((config, notify))
    }
}

/// The longest duration a key takes: a year.
const MAX_DURATION_SECS: u64 = 365 * 86_400;

/// A duration key: `90s`, `30m`, `12h`, `7d` (a bare number is seconds),
/// from 1 s to a year; `default_ms` when the key is absent.
fn duration_ms(key: &'static str, text: Option<&str>, default_ms: u64) -> Result<u64, ConfigError> {
    let Some(text) = text else {
        return Ok(default_ms);
    };
    let forms = "write a number and a unit: 90s, 30m, 12h or 7d";
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let unit_secs: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(invalid(key, forms)),
    };
    let count: u64 = digits.parse().map_err(|_| invalid(key, forms))?;
    count
        .checked_mul(unit_secs)
        .filter(|secs| (1..=MAX_DURATION_SECS).contains(secs))
        .map(|secs| secs * 1000)
        .ok_or_else(|| invalid(key, "must be from 1s to 365d"))
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

fn notify_config(file: FileNotify) -> Result<NotifyConfig, ConfigError> {
    let events = match file.events {
        None => Selection::default(),
        Some(names) => selection(&names)?,
    };
    let commands = file
        .command
        .into_iter()
        .enumerate()
        .map(|(i, c)| command_config(i + 1, c))
        .collect::<Result<_, _>>()?;
    let smtp = file.smtp.map(smtp_config).transpose()?;
    Ok(NotifyConfig {
        events,
        commands,
        smtp,
    })
}

fn selection(names: &[String]) -> Result<Selection, ConfigError> {
    let key = "notify.events";
    let mut kinds: Vec<&'static str> = Vec::new();
    for name in names {
        match name.as_str() {
            "all" => return Ok(Selection::All),
            "default" => kinds.extend(notify::DEFAULT_KINDS),
            other => match notify::ALL_KINDS.iter().find(|k| **k == other) {
                Some(kind) => kinds.push(kind),
                None => {
                    return Err(invalid(
                        key,
                        format!(
                            "{other:?} is not an event name; use \"default\", \"all\" or some of: {}",
                            notify::ALL_KINDS.join(", ")
                        ),
                    ));
                }
            },
        }
    }
    kinds.sort_unstable();
    kinds.dedup();
    Ok(Selection::Kinds(kinds))
}

fn command_config(number: usize, file: FileCommand) -> Result<CommandConfig, ConfigError> {
    if file
        .argv
        .first()
        .is_none_or(|program| program.trim().is_empty())
    {
        return Err(invalid(
            "notify.command.argv",
            format!(
                "command {number}: needs at least the program, for example \
                 argv = [\"/usr/local/bin/sherd-notify\"]"
            ),
        ));
    }
    let timeout_secs = file
        .timeout_secs
        .unwrap_or(notify::DEFAULT_COMMAND_TIMEOUT.as_secs());
    if !(1..=3600).contains(&timeout_secs) {
        return Err(invalid(
            "notify.command.timeout_secs",
            format!("command {number}: must be 1 to 3600, got {timeout_secs}"),
        ));
    }
    Ok(CommandConfig {
        argv: file.argv,
        timeout: Duration::from_secs(timeout_secs),
    })
}

fn smtp_config(file: FileSmtp) -> Result<SmtpConfig, ConfigError> {
    let host = file.host.trim().to_owned();
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "notify.smtp.host",
            format!("{:?} is not a host name or address", file.host),
        ));
    }
    let tls = match file.tls.as_deref().unwrap_or("starttls") {
        "starttls" => SmtpTls::StartTls,
        "tls" => SmtpTls::Tls,
        "none" => SmtpTls::None,
        other => {
            return Err(invalid(
                "notify.smtp.tls",
                format!("{other:?} is not a TLS mode; use \"starttls\", \"tls\" or \"none\""),
            ));
        }
    };
    if tls == SmtpTls::None && !is_loopback(&host) {
        return Err(invalid(
            "notify.smtp.tls",
            format!(
                "\"none\" sends mail, and any password, unencrypted, so it is allowed only \
                 for a server on this machine (localhost, 127.0.0.1, ::1), and {host} is not \
                 one: use \"starttls\" or \"tls\""
            ),
        ));
    }
    let port = file.port.unwrap_or(tls.default_port());
    if port == 0 {
        return Err(invalid("notify.smtp.port", "must be 1 to 65535, got 0"));
    }
    let mailbox = |key: &'static str, text: &str| {
        text.parse::<Mailbox>().map_err(|e| {
            invalid(
                key,
                format!(
                    "{text:?} is not a mail address ({e}); for example \"sherd <me@example.org>\""
                ),
            )
        })
    };
    let from = mailbox("notify.smtp.from", &file.from)?;
    if file.to.is_empty() || file.to.len() > MAX_MAIL_RECIPIENTS {
        return Err(invalid(
            "notify.smtp.to",
            format!(
                "needs 1 to {MAX_MAIL_RECIPIENTS} addresses, got {}",
                file.to.len()
            ),
        ));
    }
    let to = file
        .to
        .iter()
        .map(|t| mailbox("notify.smtp.to", t))
        .collect::<Result<_, _>>()?;
    let credentials = match (file.username, file.password_file) {
        (None, None) => None,
        (Some(username), Some(path)) if !username.trim().is_empty() => Some(SmtpCredentials {
            username,
            password: read_password_file(&path)?,
        }),
        (Some(_), Some(_)) => return Err(invalid("notify.smtp.username", "is empty")),
        (Some(_), None) => {
            return Err(invalid(
                "notify.smtp.password_file",
                "a username needs a password_file (mode 0600) beside it",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "notify.smtp.username",
                "a password_file needs the username it belongs to",
            ));
        }
    };
    Ok(SmtpConfig {
        host,
        port,
        tls,
        from,
        to,
        credentials,
    })
}

/// Whether `host` names this machine: `localhost` or a loopback address.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The SMTP password, read once at start. As with the key and the
/// passphrase file: a regular file (a symlink to one is followed) that group
/// and others cannot read or write; one trailing newline is stripped.
fn read_password_file(path: &Path) -> Result<SmtpPassword, ConfigError> {
    let key = "notify.smtp.password_file";
    let shown = path.display();
    let mut file =
        File::open(path).map_err(|e| invalid(key, format!("cannot read {shown}: {e}")))?;
    // Checked on the open file, so the file checked is the file read.
    let meta = file
        .metadata()
        .map_err(|e| invalid(key, format!("cannot read {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(invalid(key, format!("{shown} is not a regular file")));
    }
    if let Some(mode) = keys::loose_mode(&meta) {
        return Err(invalid(
            key,
            format!(
                "{shown} has mode {mode:04o}, so group or others can read or write it; \
                 sherdd refuses to use it: fix it with `chmod 600 {shown}`"
            ),
        ));
    }
    let (buf, len) = keys::read_capped::<{ MAX_PASSWORD_LEN + 1 }>(&mut file)
        .map_err(|e| invalid(key, format!("cannot read {shown}: {e}")))?;
    if len > MAX_PASSWORD_LEN {
        return Err(invalid(
            key,
            format!("{shown} is longer than {MAX_PASSWORD_LEN} bytes; is it the right file?"),
        ));
    }
    let text = buf.get(..len).unwrap_or_default();
    let text = text
        .strip_suffix(b"\r\n")
        .or_else(|| text.strip_suffix(b"\n"))
        .unwrap_or(text);
    let text = std::str::from_utf8(text)
        .map_err(|_| invalid(key, format!("{shown} is not UTF-8 text")))?;
    if text.is_empty() {
        return Err(invalid(key, format!("{shown} is empty")));
    }
    Ok(SmtpPassword::new(Zeroizing::new(text.to_owned())))
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

fn parse_addrs(key: &'static str, addrs: &[String]) -> Result<Vec<Multiaddr>, ConfigError> {
    addrs
        .iter()
        .map(|a| {
            a.parse().map_err(|e| ConfigError::Invalid {
                key,
                message: format!(
                    "{a:?} is not a multiaddr ({e}); for example /ip4/127.0.0.1/tcp/7411"
                ),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_with_file(toml: &str, overrides: Overrides) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE_NAME), toml).unwrap();
        Config::resolve(overrides, Some(dir.path().to_owned()))
    }

    #[test]
    fn the_daily_request_limit_comes_from_the_file_or_defaults_to_three() {
        let c = resolve_with_file("", Overrides::default()).unwrap();
        assert_eq!(c.engine.requests_per_day, 3);
        assert!(!c.engine.tamper_releases);
        let c = resolve_with_file("requests_per_day = 10\n", Overrides::default()).unwrap();
        assert_eq!(c.engine.requests_per_day, 10);
        let c = resolve_with_file(
            "request_expiry = \"12h\"\nhealth_check_interval = \"90s\"\ncustodian_silent_after = \"3d\"\n",
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.engine.request_ttl_ms, 12 * 3_600_000);
        assert_eq!(c.engine.health_check_interval_ms, 90_000);
        assert_eq!(c.engine.custodian_silent_after_ms, 3 * 86_400_000);
        for bad in ["\"0s\"", "\"366d\"", "\"7 days\"", "\"d\"", "\"-1s\"", "7"] {
            let text = format!("health_check_interval = {bad}\n");
            let e = resolve_with_file(&text, Overrides::default()).unwrap_err();
            assert!(
                e.to_string().contains("health_check_interval"),
                "{bad}: {e}"
            );
        }
        assert!(resolve_with_file("requests_per_day = -1\n", Overrides::default()).is_err());
    }

    #[test]
    fn defaults_are_documented_ones() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::resolve(Overrides::default(), Some(dir.path().to_owned())).unwrap();
        assert_eq!(c.data_dir, dir.path());
        assert_eq!(
            c.network.listen,
            vec![DEFAULT_LISTEN.parse::<Multiaddr>().unwrap()]
        );
        assert!(!c.network.mdns, "mDNS is opt-in");
        assert!(c.network.bootstrap.is_empty());
        assert_eq!(c.log, "info");
        assert_eq!(c.socket_path(), dir.path().join("sherdd.sock"));
    }

    #[test]
    fn flags_win_over_the_file() {
        let toml = "log = \"debug\"\n[network]\nlisten = [\"/ip4/127.0.0.1/tcp/1\"]\nmdns = true\n";
        let c = resolve_with_file(
            toml,
            Overrides {
                listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
                mdns: Some(false),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(
            c.network.listen,
            vec!["/ip4/127.0.0.1/tcp/0".parse::<Multiaddr>().unwrap()]
        );
        assert!(!c.network.mdns);
        assert_eq!(c.log, "debug");
    }

    /// The config with `toml`, and its `[notify]` section.
    fn notify_of(toml: &str) -> Result<NotifyConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE_NAME), toml).unwrap();
        Config::resolve_with_notify(Overrides::default(), Some(dir.path().to_owned()))
            .map(|(_, notify)| notify)
    }

    fn password_file(dir: &Path, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.join("smtp-password");
        std::fs::write(&path, "hunter2\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn notifications_are_off_unless_a_notifier_is_configured() {
        let notify = notify_of("").unwrap();
        assert!(notify.is_empty());
        assert_eq!(notify.events, Selection::default());
        assert!(notify.events.wants("request_received"));
        assert!(!notify.events.wants("entry_stored"));
    }

    #[test]
    fn a_full_notify_section_is_understood() {
        let dir = tempfile::tempdir().unwrap();
        let password = password_file(dir.path(), 0o600);
        let toml = format!(
            r#"
[notify]
events = ["default", "backup_created"]

[[notify.command]]
argv = ["/usr/local/bin/sherd-notify", "--to", "me"]

[[notify.command]]
argv = ["logger", "-t", "sherd"]
timeout_secs = 3

[notify.smtp]
host = "smtp.example.org"
from = "sherd <sherd@example.org>"
to = ["me@example.org", "Other <other@example.org>"]
username = "sherd@example.org"
password_file = "{}"
"#,
            password.display()
        );
        let notify = notify_of(&toml).unwrap();
        assert!(notify.events.wants("backup_created"));
        assert!(notify.events.wants("release_due"));
        assert!(!notify.events.wants("entry_stored"));
        assert_eq!(notify.commands.len(), 2);
        assert_eq!(notify.commands[0].timeout, notify::DEFAULT_COMMAND_TIMEOUT);
        assert_eq!(notify.commands[0].program(), "/usr/local/bin/sherd-notify");
        assert_eq!(notify.commands[1].timeout, Duration::from_secs(3));
        let smtp = notify.smtp.unwrap();
        assert_eq!(smtp.tls, SmtpTls::StartTls);
        assert_eq!(smtp.port, 587);
        assert_eq!(smtp.to.len(), 2);
        let login = smtp.credentials.unwrap();
        assert_eq!(login.username, "sherd@example.org");
        // The trailing newline is stripped, and the password is never printed.
        assert!(!format!("{login:?}").contains("hunter2"));
        assert_eq!(format!("{:?}", login.password), "SmtpPassword(<redacted>)");

        let all = notify_of("[notify]\nevents = [\"all\"]\n").unwrap();
        assert_eq!(all.events, Selection::All);
        let tls = notify_of(
            "[notify.smtp]\nhost = \"mail.example.org\"\ntls = \"tls\"\nfrom = \"a@example.org\"\nto = [\"b@example.org\"]\n",
        )
        .unwrap();
        assert_eq!(tls.smtp.unwrap().port, 465);
        for host in ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"] {
            let toml = format!(
                "[notify.smtp]\nhost = \"{host}\"\ntls = \"none\"\nfrom = \"a@example.org\"\nto = [\"b@example.org\"]\n"
            );
            let smtp = notify_of(&toml).unwrap().smtp.unwrap();
            assert_eq!((smtp.tls, smtp.port), (SmtpTls::None, 25), "{host}");
        }
    }

    #[test]
    fn notify_mistakes_are_named() {
        let err = |toml: &str| notify_of(toml).unwrap_err().to_string();
        let smtp = |extra: &str| {
            format!("[notify.smtp]\nfrom = \"a@example.org\"\nto = [\"b@example.org\"]\n{extra}")
        };

        let e = err(&smtp("host = \"mail.example.org\"\nhots = \"x\"\n"));
        assert!(e.contains("unknown field `hots`"), "{e}");
        let e = err("[[notify.command]]\nargv = [\"x\"]\nshell = true\n");
        assert!(e.contains("unknown field `shell`"), "{e}");
        let e = err("[notify]\nevents = [\"request_recieved\"]\n");
        assert!(
            e.starts_with("config `notify.events`: \"request_recieved\" is not an event name"),
            "{e}"
        );
        let e = err("[[notify.command]]\nargv = []\n");
        assert!(
            e.starts_with("config `notify.command.argv`: command 1:"),
            "{e}"
        );
        let e = err("[[notify.command]]\nargv = [\"x\"]\ntimeout_secs = 0\n");
        assert!(e.starts_with("config `notify.command.timeout_secs`"), "{e}");

        // Plain SMTP only to this machine.
        for host in ["mail.example.org", "192.168.1.10", "localhost.example.org"] {
            let e = err(&smtp(&format!("host = \"{host}\"\ntls = \"none\"\n")));
            assert!(
                e.starts_with("config `notify.smtp.tls`: \"none\" sends mail"),
                "{e}"
            );
            assert!(e.contains(&format!("{host} is not one")), "{e}");
        }
        let e = err(&smtp("host = \"mail.example.org\"\ntls = \"ssl\"\n"));
        assert!(
            e.starts_with("config `notify.smtp.tls`: \"ssl\" is not a TLS mode"),
            "{e}"
        );
        let e = err(
            "[notify.smtp]\nhost = \"m\"\nfrom = \"not an address\"\nto = [\"b@example.org\"]\n",
        );
        assert!(e.starts_with("config `notify.smtp.from`"), "{e}");
        let e = err("[notify.smtp]\nhost = \"m\"\nfrom = \"a@example.org\"\nto = []\n");
        assert!(
            e.starts_with("config `notify.smtp.to`: needs 1 to 32"),
            "{e}"
        );
        let e = err(&smtp("host = \"m\"\nusername = \"u\"\n"));
        assert!(e.starts_with("config `notify.smtp.password_file`"), "{e}");

        // The password file: 0600 or refused, like the key.
        let dir = tempfile::tempdir().unwrap();
        let loose = password_file(dir.path(), 0o644);
        let e = err(&smtp(&format!(
            "host = \"m\"\nusername = \"u\"\npassword_file = \"{}\"\n",
            loose.display()
        )));
        assert!(e.starts_with("config `notify.smtp.password_file`"), "{e}");
        assert!(e.contains("has mode 0644"), "{e}");
        assert!(e.contains("chmod 600"), "{e}");
        let e = err(&smtp(
            "host = \"m\"\nusername = \"u\"\npassword_file = \"/nonexistent/pw\"\n",
        ));
        assert!(e.contains("cannot read /nonexistent/pw"), "{e}");
    }

    #[test]
    fn mistakes_are_named() {
        let err = resolve_with_file("[network]\nlisten = [\"nonsense\"]\n", Overrides::default())
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config `network.listen`: \"nonsense\" is not a multiaddr"),
            "{err}"
        );
        let err = resolve_with_file("[network]\nlistn = []\n", Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("unknown field `listn`"), "{err}");
        let err = resolve_with_file("[network]\nmax_connections = 0\n", Overrides::default())
            .unwrap_err();
        assert!(err.to_string().contains("network.max_connections"), "{err}");
        assert!(matches!(
            Config::resolve(Overrides::default(), None),
            Err(ConfigError::NoDataDir)
        ));
        let missing = Overrides {
            config: Some("/nonexistent/sherd.toml".into()),
            ..Overrides::default()
        };
        assert!(matches!(
            Config::resolve(missing, None),
            Err(ConfigError::Read { .. })
        ));
    }
}
