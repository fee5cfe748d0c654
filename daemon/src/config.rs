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
//! ```
//!
//! The file is `--config PATH` (`SHERD_CONFIG`), else `config.toml` in the
//! data dir if there is one. Unknown keys are an error, so a typo does not
//! silently leave a default in place.

use std::path::{Path, PathBuf};

use libp2p::Multiaddr;
use serde::Deserialize;

use crate::net::NetworkConfig;

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
    #[serde(default)]
    network: FileNetwork,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNetwork {
    listen: Option<Vec<String>>,
    bootstrap: Option<Vec<String>>,
    mdns: Option<bool>,
    max_connections: Option<u32>,
}

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
        Ok(Self {
            data_dir,
            passphrase_file: overrides.passphrase_file.or(file.passphrase_file),
            log: file.log.unwrap_or_else(|| "info".to_owned()),
            network,
            engine: crate::engine::EngineOptions {
                requests_per_day: file
                    .requests_per_day
                    .unwrap_or(crate::engine::DEFAULT_REQUESTS_PER_DAY),
                ..crate::engine::EngineOptions::default()
            },
        })
    }
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
