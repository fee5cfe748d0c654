//! `sherdd`, the sherd node: loads its configuration and key, opens the
//! store, joins the network, serves the control API on a Unix socket in the
//! data dir, and stops cleanly on SIGINT or SIGTERM.
//!
//! `sherdd reindex` instead rebuilds the store's indexes from its entries,
//! with the daemon stopped, and exits.
//!
//! Exit codes: 0 after a clean stop or a finished reindex, 1 when the node
//! cannot start or the reindex fails (the message says why and what to do),
//! 2 for a usage error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sherd_daemon::api::ControlBackend as _;
use sherd_daemon::config::{Config, Overrides};
use sherd_daemon::control::NodeControl;
use sherd_daemon::keys::{self, KeyFileKind, Passphrase};
use sherd_daemon::node::Node;
use sherd_daemon::notify::{Notifier, NotifyConfig};
use sherd_daemon::store::Store;
use tokio::sync::oneshot;
use tracing_subscriber::EnvFilter;

/// How long a stop may take before sherdd exits anyway.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(10);
/// How long notifications already queued may take to go out at a stop.
const NOTIFY_DRAIN_LIMIT: Duration = Duration::from_secs(3);

/// The sherd node: social backup of secrets and emergency access, peer to peer.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Without a command, sherdd runs the node.
    #[command(subcommand)]
    command: Option<Command>,
    /// The config file (TOML). Default: config.toml in the data dir, if present.
    #[arg(long, env = "SHERD_CONFIG", value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    /// Where the key, the store and the control socket live.
    /// Default: $XDG_DATA_HOME/sherd, else ~/.local/share/sherd.
    #[arg(long, env = "SHERD_DATA_DIR", value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// An address to listen on (repeat for several), e.g. /ip4/127.0.0.1/tcp/0.
    #[arg(
        long = "listen",
        env = "SHERD_LISTEN",
        value_delimiter = ',',
        value_name = "MULTIADDR"
    )]
    listen: Vec<String>,
    /// A peer to dial at start (repeat for several).
    #[arg(
        long = "bootstrap",
        env = "SHERD_BOOTSTRAP",
        value_delimiter = ',',
        value_name = "MULTIADDR"
    )]
    bootstrap: Vec<String>,
    /// Announce and discover peers on the LAN with mDNS (off by default).
    #[arg(long, env = "SHERD_MDNS", value_name = "BOOL")]
    mdns: Option<bool>,
    /// A file holding the passphrase of the identity key.
    #[arg(long, env = "SHERD_PASSPHRASE_FILE", value_name = "PATH")]
    passphrase_file: Option<PathBuf>,
    /// TEST ONLY: corrupt every shard this node releases (plays a byzantine
    /// custodian in the testnet's scenarios). No environment variable and no
    /// config key turn it on, so it cannot be set by accident.
    #[arg(long, hide = true)]
    test_tamper_releases: bool,
    /// TEST ONLY: serve the fault-injection routes of the control API under
    /// /v1/test/ (block and unblock a peer, drop gossip, flood a peer, fill
    /// the node's own feed), for the testnet's scenarios and benches. No
    /// environment variable and no config key turn it on; without it those
    /// routes do not exist (404).
    #[arg(long, hide = true)]
    test_hooks: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rebuild the store's indexes from its entries (stop the daemon first)
    ///
    /// Clears the entry-id index and the feed heads and writes them again
    /// from the stored entries, checking every feed's chain (sequence,
    /// backlinks, signatures) on the way. A damaged feed stops it with
    /// nothing changed. Refused while a daemon has the store open; needs
    /// neither the key nor its passphrase.
    Reindex,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Some(Command::Reindex) => reindex(args.config, args.data_dir),
        None => run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sherdd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `sherdd reindex`: the store only, so no key is loaded and no passphrase asked for.
fn reindex(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let overrides = Overrides {
        config,
        data_dir,
        ..Overrides::default()
    };
    let config = Config::resolve(overrides, sherd_api::default_data_dir())?;
    let report = Store::reindex(&config.store_path())?;
    println!(
        "reindexed {} feeds, {} entries in {:.2} s",
        report.feeds,
        report.entries,
        report.elapsed.as_secs_f64()
    );
    Ok(())
}

fn run(args: Args) -> anyhow::Result<()> {
    let overrides = Overrides {
        config: args.config,
        data_dir: args.data_dir,
        listen: args.listen,
        bootstrap: args.bootstrap,
        mdns: args.mdns,
        passphrase_file: args.passphrase_file,
    };
    let (mut config, notify) =
        Config::resolve_with_notify(overrides, sherd_api::default_data_dir())?;
    config.engine.tamper_releases = args.test_tamper_releases;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log))
        .with_context(|| format!("log filter {:?} is not valid", config.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    // Ask for a passphrase only when the key needs one, so a plain key never prompts.
    let sealed = keys::key_file_kind(&config.data_dir)? == Some(KeyFileKind::Sealed);
    let env_passphrase = match std::env::var_os(keys::PASSPHRASE_ENV) {
        None => None,
        Some(v) => Some(v.into_string().map_err(|_| {
            anyhow::anyhow!(
                "{} is not valid UTF-8; use passphrase_file instead",
                keys::PASSPHRASE_ENV
            )
        })?),
    };
    let passphrase =
        Passphrase::from_sources(config.passphrase_file.as_deref(), env_passphrase, sealed)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sherdd")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, notify, passphrase, args.test_hooks))
}

/// Runs the node, its control API (with the TEST ONLY routes if
/// `test_hooks`) and its notifiers until SIGINT or SIGTERM.
async fn serve(
    config: Config,
    notify: NotifyConfig,
    passphrase: Option<Passphrase>,
    test_hooks: bool,
) -> anyhow::Result<()> {
    let node = Node::start(config, passphrase).await?;
    // Watched from before the banner, which tells a supervisor the node is
    // up: a SIGTERM sent as soon as it is read is then a clean stop, not the
    // default disposition's death.
    let stop = StopSignals::watch()?;
    let listening = wait_for_listen_addrs(&node).await;
    println!("sherdd {}", env!("CARGO_PKG_VERSION"));
    println!("  feed    {}", node.key.feed_id());
    println!("  data    {}", node.config.data_dir.display());
    println!("  socket  {}", node.config.socket_path().display());
    if node.config.engine.tamper_releases {
        println!("  WARNING --test-tamper-releases: every shard released is corrupted (test only)");
        tracing::warn!("test hook on: every shard this node releases is corrupted");
    }
    if test_hooks {
        println!(
            "  WARNING --test-hooks: the control API can block peers, drop gossip, flood peers and fill this node's feed (test only)"
        );
        tracing::warn!("test hooks on: the control API serves /v1/test/");
    }
    for addr in &listening {
        println!("  listen  {addr}");
    }

    let control = Arc::new(
        NodeControl::new(
            node.key.clone(),
            node.store.clone(),
            node.net.clone(),
            node.engine.clone(),
        )
        .with_test_hooks(test_hooks),
    );
    let notifier = match Notifier::start(
        notify,
        node.key.feed_id(),
        control.events(),
        node.store.clone(),
    ) {
        Ok(notifier) => notifier,
        Err(e) => {
            node.shutdown(SHUTDOWN_LIMIT).await;
            return Err(e.into());
        }
    };
    let socket = node.config.socket_path();
    let (stop_api, api_stop) = oneshot::channel::<()>();
    let mut api = tokio::spawn(async move {
        let stop = async {
            // A dropped sender means the same as a sent stop.
            let _ = api_stop.await;
        };
        sherd_daemon::api::serve(&socket, control, stop).await
    });

    let result = tokio::select! {
        () = stop.wait() => Ok(()),
        served = &mut api => match served {
            Ok(Ok(())) => Err(anyhow::anyhow!("the control API stopped unexpectedly")),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("cannot serve the control API")),
            Err(e) => Err(anyhow::anyhow!("the control API task failed: {e}")),
        },
    };
    tracing::info!("stopping");
    let _ = stop_api.send(());
    if !api.is_finished() {
        let _ = api.await;
    }
    // Before the node: the notifiers hold a store handle.
    notifier.shutdown(NOTIFY_DRAIN_LIMIT).await;
    if !node.shutdown(SHUTDOWN_LIMIT).await {
        anyhow::bail!(
            "stopped after {SHUTDOWN_LIMIT:?} without a clean shutdown (nothing acknowledged is lost)"
        );
    }
    result
}

/// The bound addresses, once the listeners are up (a `/tcp/0` gets its port).
async fn wait_for_listen_addrs(node: &Node) -> Vec<libp2p::Multiaddr> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let addrs = node.net.listen_addrs().await.unwrap_or_default();
        if !addrs.is_empty() || tokio::time::Instant::now() >= deadline {
            return addrs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGINT and SIGTERM, watched from the moment this is made.
struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn watch() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
        })
    }

    /// Until one of them arrives (or arrived since [`StopSignals::watch`]).
    async fn wait(mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}
