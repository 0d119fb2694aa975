//! Hands out producer ids that are never reused by any node, even across restarts: each node
//! takes blocks of ids from the metadata quorum (Kafka's AllocateProducerIds), where a
//! cluster-wide counter moves past every block it gives. A data dir from before the quorum
//! kept its own block end in `producer-id-block`; ids below it were handed out then, so the
//! quorum is asked never to give them again.

use crate::cluster::{Controller, MetadataCommand, MetadataResponse};
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

const BLOCK: i64 = 1000;

#[derive(Debug, Error)]
pub enum ProducerIdError {
    #[error("legacy producer id block file {path}: {source}")]
    Legacy {
        path: String,
        source: std::io::Error,
    },
    #[error("no producer id block from the metadata quorum: {0}")]
    Quorum(String),
}

pub struct ProducerIdManager {
    controller: Arc<Controller>,
    node_id: u64,
    /// Ids below this were handed out before this node joined a quorum.
    floor: i64,
    /// (next id to hand out, end of the current block, exclusive); one allocation at a time.
    state: tokio::sync::Mutex<(i64, i64)>,
}

impl ProducerIdManager {
    /// A manager for this node; `legacy` is the block file of a data dir from before the quorum.
    pub fn open(
        controller: Arc<Controller>,
        node_id: u64,
        legacy: &Path,
    ) -> Result<Self, ProducerIdError> {
        let err = |source| ProducerIdError::Legacy {
            path: legacy.display().to_string(),
            source,
        };
        let floor = match std::fs::read_to_string(legacy) {
            Ok(s) => s
                .trim()
                .parse()
                .map_err(|e| err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(err(e)),
        };
        Ok(Self {
            controller,
            node_id,
            floor,
            state: tokio::sync::Mutex::new((0, 0)),
        })
    }

    /// The next unused producer id.
    pub async fn next_id(&self) -> Result<i64, ProducerIdError> {
        let mut state = self.state.lock().await;
        if state.0 >= state.1 {
            let command = MetadataCommand::AllocateProducerIds {
                node_id: self.node_id,
                count: BLOCK,
                at_least: self.floor,
            };
            match self.controller.propose(command).await {
                Ok(MetadataResponse::ProducerIds { first, count }) => {
                    tracing::info!(first, count, "producer id block allocated");
                    *state = (first, first + count);
                }
                Ok(other) => return Err(ProducerIdError::Quorum(format!("{other:?}"))),
                Err(e) => return Err(ProducerIdError::Quorum(e.to_string())),
            }
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }
}
