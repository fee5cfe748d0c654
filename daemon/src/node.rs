//! A running node: its key, store, network and protocol engine, started in
//! that order and shut down in the reverse order within a bounded time.

use std::sync::Arc;
use std::time::Duration;

use sherd_protocol::Keypair;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::engine::{self, EngineHandle};
use crate::keys::{self, KeyError, Passphrase};
use crate::net::{self, NetError, NetworkHandle};
use crate::store::{Store, StoreError, StoreThread};

/// Why a node could not start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The identity key could not be loaded or created.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The network could not start.
    #[error(transparent)]
    Net(#[from] NetError),
}

/// A started node.
#[derive(Debug)]
pub struct Node {
    /// The node's identity.
    pub key: Arc<Keypair>,
    /// The store.
    pub store: Store,
    /// The network.
    pub net: NetworkHandle,
    /// The protocol engine.
    pub engine: EngineHandle,
    /// The configuration it runs with.
    pub config: Config,
    store_thread: StoreThread,
    net_task: JoinHandle<()>,
    engine_task: JoinHandle<()>,
}

impl Node {
    /// Loads (or creates) the key, opens the store, starts the network
    /// (following the contacts) and the protocol engine (which follows what
    /// its records say and processes whatever it has not yet).
    pub async fn start(config: Config, passphrase: Option<Passphrase>) -> Result<Self, NodeError> {
        // Argon2id takes 64 MiB and a noticeable moment: off the async threads.
        let dir = config.data_dir.clone();
        let key =
            tokio::task::spawn_blocking(move || keys::load_or_create(&dir, passphrase.as_ref()))
                .await
                .map_err(|e| StoreError::Database(format!("key loading task failed: {e}")))??;
        let key = Arc::new(key);
        let (store, store_thread) = Store::open(&config.store_path(), key.clone())?;
        let follows = store
            .contacts()?
            .into_iter()
            .map(|(feed, _)| feed)
            .collect();
        let (net, net_task) = net::spawn(&key, store.clone(), config.network.clone(), follows)?;
        let (engine, engine_task) =
            engine::spawn(key.clone(), store.clone(), net.clone(), config.engine);
        tracing::info!(feed = %key.feed_id(), data_dir = %config.data_dir.display(), "node started");
        Ok(Self {
            key,
            store,
            net,
            engine,
            config,
            store_thread,
            net_task,
            engine_task,
        })
    }

    /// Stops the engine (after its current step) and the network, lets the
    /// store finish its last commit, and returns whether everything stopped
    /// within `within`. Whatever was acknowledged
    /// is committed either way: a commit is atomic.
    pub async fn shutdown(self, within: Duration) -> bool {
        let Self {
            store,
            net,
            engine,
            store_thread,
            net_task,
            engine_task,
            ..
        } = self;
        let stopped = tokio::time::timeout(within, async move {
            // The engine first: it holds store and network handles, and a
            // step it is in finishes (or aborts) as one transaction.
            engine.shutdown().await;
            let _ = engine_task.await;
            net.shutdown().await;
            // The network task ends once its loop has closed every connection.
            let _ = net_task.await;
            drop(store);
            // The writer exits when the last handle is gone; handles held by
            // finishing tasks go with them.
            let _ = tokio::task::spawn_blocking(move || store_thread.join()).await;
        })
        .await;
        if stopped.is_err() {
            tracing::warn!(
                ?within,
                "shutdown took too long; exiting anyway (every acknowledged entry is committed)"
            );
        }
        stopped.is_ok()
    }
}
