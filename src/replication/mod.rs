//! Replication: this node's share of the cluster metadata made real. The reconciler turns each
//! new metadata image into local state (topics and partitions opened or removed, each
//! partition's role and epoch), starts and stops follower fetchers, and, for the partitions this
//! node leads, proposes ISR changes to the quorum.
//!
//! The flow: the quorum applies a command → [`Controller::subscribe`] yields the new image →
//! [`Replication::reconcile`] applies it here → [`Replication::reconciled`] publishes it, so a
//! request that changed the metadata can wait until its change took effect on this node.
//!
//! Nothing local is deleted on the strength of an image older than this process's own
//! registration: until the image holds this incarnation's registration, it may predate changes
//! this node already applied before a restart.

pub mod admin;
pub mod client;
pub mod fetcher;

use crate::cluster::image::{MetadataImage, PartitionImage};
use crate::cluster::{Controller, MetadataCommand, MetadataResponse};
use crate::partition::manager::{TopicManager, TopicSpec};
use crate::partition::replicas::IsrChange;
use crate::partition::replication::{Assignment, Transition};
use crate::partition::Partition;
use fetcher::Fetchers;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Told when this node starts or stops leading a partition (the coordinators load and unload
/// the state their internal partitions hold).
pub trait LeadershipListener: Send + Sync {
    /// The topic this listener cares about.
    fn topic(&self) -> &str;
    /// `leader`: this node now leads `partition` (at a new epoch) or no longer does.
    fn on_leadership(&self, partition: &Arc<Partition>, leader: bool);
    /// Topics left the metadata (deleted, or deleted and created again under a new id): state
    /// kept about them goes with them. Told for every topic, hosted here or not.
    fn on_topics_deleted(&self, _topics: &[String]) {}
}

pub struct Replication {
    local: u64,
    /// The address connections to other nodes leave from.
    source: Option<std::net::IpAddr>,
    incarnation: u64,
    controller: Arc<Controller>,
    topics: Arc<TopicManager>,
    fetchers: Fetchers,
    lag: Duration,
    reconciled: watch::Sender<Arc<MetadataImage>>,
    listeners: Mutex<Vec<Arc<dyn LeadershipListener>>>,
}

impl Replication {
    pub fn new(
        local: u64,
        source: Option<std::net::IpAddr>,
        incarnation: u64,
        controller: Arc<Controller>,
        topics: Arc<TopicManager>,
        fetchers: Fetchers,
        lag: Duration,
    ) -> Self {
        Replication {
            local,
            source,
            incarnation,
            controller,
            topics,
            fetchers,
            lag,
            reconciled: watch::Sender::new(Arc::new(MetadataImage::default())),
            listeners: Mutex::new(Vec::new()),
        }
    }

    /// This node's id.
    pub fn local(&self) -> u64 {
        self.local
    }

    /// The address connections to other nodes leave from.
    pub fn source(&self) -> Option<std::net::IpAddr> {
        self.source
    }

    pub fn controller(&self) -> &Arc<Controller> {
        &self.controller
    }

    /// The image last applied on this node.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.reconciled.borrow().clone()
    }

    /// A receiver of every image once it is applied on this node.
    pub fn reconciled(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.reconciled.subscribe()
    }

    pub fn add_listener(&self, listener: Arc<dyn LeadershipListener>) {
        self.listeners
            .lock()
            .expect("listeners lock poisoned")
            .push(listener);
    }

    /// Whether the image holds this process's own registration (so it is not older than
    /// anything this node applied before a restart).
    pub fn is_registered(&self, image: &MetadataImage) -> bool {
        image
            .nodes
            .get(&self.local)
            .is_some_and(|n| n.incarnation == Some(self.incarnation))
    }

    /// Applies every new image until `stop`; proposes due ISR changes between images.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut images = self.controller.subscribe();
        let mut isr_tick = tokio::time::interval((self.lag / 4).max(Duration::from_millis(100)));
        loop {
            let image = images.borrow_and_update().clone();
            self.reconcile(&image);
            self.reconciled.send_replace(image);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    changed = images.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        break;
                    }
                    _ = isr_tick.tick() => self.check_isr(),
                }
            }
        }
    }

    /// Makes local state match `image`.
    pub fn reconcile(&self, image: &MetadataImage) {
        let caught_up = self.is_registered(image);
        let deleted: Vec<String> = {
            let previous = self.reconciled.borrow();
            previous
                .topics
                .iter()
                .filter(|(name, t)| {
                    image
                        .topic(name)
                        .is_none_or(|now| now.topic_id != t.topic_id)
                })
                .map(|(name, _)| name.clone())
                .collect()
        };
        if !deleted.is_empty() {
            let listeners = self
                .listeners
                .lock()
                .expect("listeners lock poisoned")
                .clone();
            for l in &listeners {
                l.on_topics_deleted(&deleted);
            }
        }
        for (name, t) in &image.topics {
            let Ok(id) = uuid::Uuid::parse_str(&t.topic_id) else {
                continue;
            };
            let mut hosted: BTreeSet<i32> = (0..t.partitions.len() as i32)
                .filter(|i| t.partitions[*i as usize].replicas.contains(&self.local))
                .collect();
            let current = self.topics.get(name).filter(|c| c.id == id);
            if !caught_up {
                if let Some(c) = &current {
                    hosted.extend((0..c.partition_count()).filter(|i| c.partition(*i).is_some()));
                }
            }
            // Replicas this node no longer holds (reassigned away): stop fetching them and tell
            // the listeners before their directories go, so no fetcher appends to a removed log
            // and no follower fetch reaches the leader from a node that is no longer a replica.
            if let Some(c) = &current {
                for p in c.local().filter(|p| !hosted.contains(&p.tp().partition)) {
                    self.release(name, p);
                }
            }
            let spec = TopicSpec {
                name: name.clone(),
                id,
                partitions: t.partitions.len() as i32,
                hosted,
                overrides: t.configs.clone(),
            };
            let topic = match self.topics.apply(&spec) {
                Ok(topic) => topic,
                Err(e) => {
                    tracing::error!(topic = %name, error = %e, "cannot apply topic metadata");
                    continue;
                }
            };
            for (i, pi) in t.partitions.iter().enumerate() {
                if let Some(p) = topic.partition(i as i32) {
                    if pi.replicas.contains(&self.local) {
                        self.assign(image, p, pi);
                    }
                }
            }
        }
        if caught_up {
            for t in self.topics.list() {
                let gone = image
                    .topic(&t.name)
                    .is_none_or(|it| uuid::Uuid::parse_str(&it.topic_id).ok() != Some(t.id));
                if gone {
                    for p in t.local() {
                        self.release(&t.name, p);
                    }
                    if let Err(e) = self.topics.delete(&t.name) {
                        tracing::error!(topic = %t.name, error = %e, "cannot delete topic");
                    }
                }
            }
        }
    }

    fn assign(&self, image: &MetadataImage, p: &Arc<Partition>, pi: &PartitionImage) {
        let assignment = Assignment {
            leader: pi.leader,
            leader_epoch: pi.leader_epoch,
            partition_epoch: pi.partition_epoch,
            replicas: pi.replicas.clone(),
            isr: pi.isr.clone(),
        };
        let was_leader = p.role() == crate::partition::replicas::Role::Leader;
        let transition = match p.apply_assignment(&assignment) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(partition = %p.tp(), error = %e, "cannot take the assigned role");
                return;
            }
        };
        match transition {
            Transition::Unchanged => {}
            Transition::BecameLeader => {
                tracing::info!(partition = %p.tp(), epoch = pi.leader_epoch, "leading");
                self.fetchers.unfollow(p.tp());
                self.notify(&p.tp().topic, p, true);
            }
            Transition::BecameFollower { leader } => {
                match image.nodes.get(&leader) {
                    Some(node) => {
                        let addr = format!("{}:{}", node.host, node.port);
                        tracing::info!(partition = %p.tp(), leader, epoch = pi.leader_epoch, "following");
                        self.fetchers
                            .follow(p.clone(), leader, addr, pi.leader_epoch);
                    }
                    None => {
                        tracing::error!(partition = %p.tp(), leader, "the leader is not registered")
                    }
                }
                if was_leader {
                    self.notify(&p.tp().topic, p, false);
                }
            }
            Transition::BecameLeaderless => {
                tracing::warn!(partition = %p.tp(), epoch = pi.leader_epoch, "no leader: every in-sync replica is fenced");
                self.fetchers.unfollow(p.tp());
                if was_leader {
                    self.notify(&p.tp().topic, p, false);
                }
            }
        }
    }

    /// This node stops holding `p`: no more fetching, and no more leading.
    fn release(&self, topic: &str, p: &Arc<Partition>) {
        self.fetchers.unfollow(p.tp());
        self.notify(topic, p, false);
    }

    fn notify(&self, topic: &str, p: &Arc<Partition>, leader: bool) {
        let listeners = self
            .listeners
            .lock()
            .expect("listeners lock poisoned")
            .clone();
        for l in listeners.iter().filter(|l| l.topic() == topic) {
            l.on_leadership(p, leader);
        }
    }

    /// Called by the fetch path when a follower fetched from a partition this node leads.
    pub fn follower_fetched(&self, p: &Arc<Partition>, replica: u64, fetch_offset: i64) {
        let image = self.image();
        let eligible = |id: u64| image.is_eligible(id);
        if let Some(change) = p.record_follower_fetch(replica, fetch_offset, self.lag, eligible) {
            self.propose_isr(p, change);
        }
    }

    /// Proposes due ISR shrinks and expansions for the partitions this node leads.
    fn check_isr(&self) {
        let image = self.image();
        for p in self.topics.all_partitions() {
            if let Some(change) = p.wanted_isr_change(self.lag, |id| image.is_eligible(id)) {
                self.propose_isr(&p, change);
            }
        }
    }

    fn propose_isr(&self, p: &Arc<Partition>, change: IsrChange) {
        tracing::info!(partition = %p.tp(), isr = ?change.isr, "proposing an ISR change");
        p.set_pending_isr(Some(change.clone()));
        let command = MetadataCommand::AlterIsr {
            topic: p.tp().topic.to_string(),
            partition: p.tp().partition,
            leader: self.local,
            leader_epoch: change.leader_epoch,
            partition_epoch: change.partition_epoch,
            isr: change.isr,
        };
        let controller = self.controller.clone();
        let partition = p.clone();
        tokio::spawn(async move {
            match controller
                .propose(command)
                .await
                .map(MetadataResponse::into_result)
            {
                Ok(Ok(())) => {}
                Ok(Err(r)) => {
                    tracing::info!(partition = %partition.tp(), rejection = %r, "ISR change refused");
                    partition.set_pending_isr(None);
                }
                Err(e) => {
                    tracing::warn!(partition = %partition.tp(), error = %e, "ISR change not proposed");
                    partition.set_pending_isr(None);
                }
            }
        });
    }
}
