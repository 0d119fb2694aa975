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
use super::image::MetadataImage;
use super::{MetadataCommand, MetadataResponse};
use crate::config::listeners::Endpoint;
use crate::model::now_ms;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// This node as it registers: its id, this process's incarnation (random per start) and its
/// Kafka listeners.
#[derive(Debug, Clone)]
pub struct Registration {
    pub node_id: u64,
    pub incarnation: u64,
    pub host: String,
    pub port: u16,
    /// Every client listener's advertised address (`host`/`port` is the inter-broker one's).
    pub endpoints: Vec<Endpoint>,
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
        listeners: me.endpoints.clone(),
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

/// While this node leads the quorum: every `interval`, moves leadership back to preferred
/// replicas (Kafka's automatic leader rebalance). For each node, the partitions it is the
/// preferred (first) replica of but does not lead are counted; when their share exceeds
/// `max_percent`, each of them whose preferred replica is eligible and in sync gets a preferred
/// election. The election rule itself is the quorum's (`ElectPreferred`).
pub async fn leader_rebalancer(
    controller: Arc<Controller>,
    interval: Duration,
    max_percent: u32,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !controller.is_leader() {
            continue;
        }
        for (topic, partition) in imbalanced(&controller.image(), max_percent) {
            let elect = MetadataCommand::ElectPreferred {
                topic: topic.clone(),
                partition,
            };
            match tokio::time::timeout(interval, controller.propose(elect)).await {
                Ok(Ok(answer)) => match answer.into_result() {
                    Ok(()) => {
                        tracing::info!(%topic, partition, "leadership moved back to the preferred replica")
                    }
                    Err(r) => {
                        tracing::debug!(%topic, partition, rejection = %r, "no preferred election")
                    }
                },
                Ok(Err(e)) => {
                    tracing::warn!(%topic, partition, error = %e, "preferred election failed")
                }
                Err(_) => {
                    tracing::warn!(%topic, partition, "preferred election got no answer in time")
                }
            }
        }
    }
}

/// The partitions to elect preferred leaders for: those of every node whose share of
/// preferred partitions led by another node exceeds `max_percent`, when the preferred replica
/// is eligible and in sync.
pub fn imbalanced(image: &MetadataImage, max_percent: u32) -> Vec<(String, i32)> {
    let mut per_node: BTreeMap<u64, (usize, Vec<(String, i32)>)> = BTreeMap::new();
    for (name, t) in &image.topics {
        for (i, p) in t.partitions.iter().enumerate() {
            let Some(&preferred) = p.replicas.first() else {
                continue;
            };
            let entry = per_node.entry(preferred).or_default();
            entry.0 += 1;
            if p.leader != Some(preferred) {
                entry.1.push((name.clone(), i as i32));
            }
        }
    }
    let mut due = Vec::new();
    for (node, (total, not_led)) in per_node {
        let over = not_led.len() * 100 > total * max_percent as usize;
        if !over || !image.is_eligible(node) {
            continue;
        }
        due.extend(not_led.into_iter().filter(|(topic, partition)| {
            image
                .partition(topic, *partition)
                .is_some_and(|p| p.isr.contains(&node))
        }));
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nodes_over_the_imbalance_share_get_their_leadership_back() {
        let mut image = MetadataImage::default();
        for id in 1..=3 {
            let register = MetadataCommand::RegisterNode {
                node_id: id,
                host: "127.0.0.1".into(),
                port: 9092,
                rack: None,
                incarnation: None,
                listeners: Vec::new(),
            };
            image.apply(&register);
            image.apply(&MetadataCommand::Heartbeat {
                node_id: id,
                at_ms: 1,
            });
        }
        let create = MetadataCommand::CreateTopic {
            name: "t".into(),
            topic_id: "7d8a6f4e-1b2c-4d3e-8f90-a1b2c3d4e5f6".into(),
            partitions: vec![vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]],
            configs: Default::default(),
        };
        image.apply(&create);
        assert!(imbalanced(&image, 10).is_empty());
        // Node 1 fails over and comes back: partition 0 is led by node 2.
        image.apply(&MetadataCommand::FenceNode {
            node_id: 1,
            if_last_heartbeat_ms: None,
        });
        image.apply(&MetadataCommand::Heartbeat {
            node_id: 1,
            at_ms: 2,
        });
        assert_eq!(image.partition("t", 0).unwrap().leader, Some(2));
        // Not back in the ISR yet: nothing to do.
        assert!(imbalanced(&image, 10).is_empty());
        let p = image.partition("t", 0).unwrap().clone();
        image.apply(&MetadataCommand::AlterIsr {
            topic: "t".into(),
            partition: 0,
            leader: 2,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![2, 3, 1],
        });
        assert_eq!(imbalanced(&image, 10), vec![("t".to_string(), 0)]);
        // One preferred partition of one not led is a 100 % share; 100 is the most allowed.
        assert!(imbalanced(&image, 100).is_empty());
    }
}
