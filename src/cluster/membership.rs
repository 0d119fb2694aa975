//! Node membership: each node registers with the quorum and heartbeats; the quorum leader fences
//! nodes whose heartbeats stop (Kafka's broker registration, heartbeats and session timeout).
//!
//! Fencing and unfencing are metadata commands, and the image's rules move partition leadership
//! with them (see `election`): a fenced node leaves every ISR and leads nothing, a node that
//! heartbeats again leads the partitions left without a leader whose ISR it is in.
//!
//! The fence monitor measures silence with its own monotonic clock: it notes when each node's
//! heartbeat time last changed in the image, so clocks that differ between nodes do not matter.
//! A monitor that has just become the quorum leader gives every node a full session first.

use super::controller::Controller;
use super::{MetadataCommand, MetadataResponse};
use crate::model::now_ms;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// This node as it registers: its id, this process's incarnation (random per start) and its
/// Kafka listener.
#[derive(Debug, Clone)]
pub struct Registration {
    pub node_id: u64,
    pub incarnation: u64,
    pub host: String,
    pub port: u16,
}

/// Registers this node (retrying until the quorum answers), then heartbeats every `interval`
/// until `stop` is cancelled. Each attempt is bounded by `patience` (well under the session
/// timeout): a heartbeat stuck on a quorum leader that has become unreachable is given up and
/// the next one finds the new leader, rather than the node being fenced for its silence.
pub async fn heartbeat(
    controller: Arc<Controller>,
    me: Registration,
    interval: Duration,
    patience: Duration,
    stop: CancellationToken,
) {
    let register = MetadataCommand::RegisterNode {
        node_id: me.node_id,
        host: me.host.clone(),
        port: me.port,
        rack: None,
        incarnation: Some(me.incarnation),
    };
    let mut registered = false;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let command = if registered {
            MetadataCommand::Heartbeat {
                node_id: me.node_id,
                at_ms: now_ms(),
            }
        } else {
            register.clone()
        };
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            r = tokio::time::timeout(patience, controller.propose(command)) => r,
        };
        let Ok(outcome) = outcome else {
            tracing::warn!(
                node_id = me.node_id,
                patience_ms = patience.as_millis() as u64,
                "heartbeat got no answer in time"
            );
            continue;
        };
        match outcome.map(MetadataResponse::into_result) {
            Ok(Ok(())) if !registered => {
                tracing::info!(node_id = me.node_id, "registered with the metadata quorum");
                registered = true;
                // Unfence at once rather than a heartbeat interval later.
                tick.reset_immediately();
            }
            Ok(Ok(())) => {}
            Ok(Err(r)) => {
                tracing::warn!(node_id = me.node_id, rejection = %r, "heartbeat refused; registering again");
                registered = false;
            }
            Err(e) => tracing::warn!(node_id = me.node_id, error = %e, "heartbeat failed"),
        }
    }
}

/// While this node leads the quorum: fences nodes that have not heartbeated for the session
/// timeout. Runs until `stop` is cancelled.
pub async fn fence_monitor(
    controller: Arc<Controller>,
    session_timeout: Duration,
    stop: CancellationToken,
) {
    // node → (last heartbeat time seen in the image, when this monitor saw it change)
    let mut seen: BTreeMap<u64, (Option<i64>, Instant)> = BTreeMap::new();
    let mut was_leader = false;
    let mut tick = tokio::time::interval(session_timeout / 6);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let leader = controller.is_leader();
        if leader && !was_leader {
            seen.clear();
        }
        was_leader = leader;
        if !leader {
            continue;
        }
        let image = controller.image();
        seen.retain(|id, _| image.nodes.contains_key(id));
        let mut silent = Vec::new();
        for (id, node) in &image.nodes {
            let entry = seen.entry(*id).or_insert((node.last_heartbeat_ms, now));
            if entry.0 != node.last_heartbeat_ms {
                *entry = (node.last_heartbeat_ms, now);
            }
            if !node.fenced && now.duration_since(entry.1) > session_timeout {
                silent.push((*id, node.last_heartbeat_ms.unwrap_or(-1)));
            }
        }
        for (node_id, last) in silent {
            // Leadership may have moved since the check: then this monitor is behind and the
            // fence is not its to make (the condition below also refuses a stale one).
            if !controller.is_leader() {
                break;
            }
            tracing::warn!(
                node_id,
                timeout_ms = session_timeout.as_millis() as u64,
                "node stopped heartbeating; fencing it"
            );
            let fence = MetadataCommand::FenceNode {
                node_id,
                if_last_heartbeat_ms: Some(last),
            };
            match tokio::time::timeout(session_timeout, controller.propose(fence)).await {
                Ok(Ok(answer)) => {
                    if let Err(r) = answer.into_result() {
                        tracing::info!(node_id, rejection = %r, "fence not applied");
                    }
                }
                Ok(Err(e)) => tracing::warn!(node_id, error = %e, "fencing failed"),
                Err(_) => tracing::warn!(node_id, "fencing got no answer in time"),
            }
        }
    }
}
