//! Topic administration through the metadata quorum: CreateTopics, DeleteTopics,
//! CreatePartitions and topic config changes are validated here, ordered by the quorum as
//! metadata commands, and answered once this node has applied the result (so a client that
//! creates a topic and then asks this node for it finds it).

use super::Replication;
use crate::cluster::image::{MetadataImage, TopicImage};
use crate::cluster::{ClusterError, MetadataCommand, Rejection};
use crate::config::topic::{self, TopicOverrides};
use crate::config::Config;
use crate::partition::admission::{self, Capacity};
use crate::partition::manager::{
    is_internal, validate_name, NewTopic, TopicError, CLUSTER_METADATA_TOPIC,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long a metadata change may take to be applied here before the request times out.
const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct TopicAdmin {
    config: Arc<Config>,
    replication: Arc<Replication>,
    /// How many partitions a node can host; every node is taken to have this node's limits.
    capacity: Capacity,
}

impl TopicAdmin {
    pub fn new(config: Arc<Config>, replication: Arc<Replication>) -> Self {
        let capacity = admission::capacity(&config);
        tracing::info!(max_partitions = capacity.max_partitions, basis = %capacity.basis, "partition capacity per node");
        TopicAdmin {
            config,
            replication,
            capacity,
        }
    }

    /// Refuses more new partitions in one request than `max_partitions_per_request`, before
    /// anything is planned for them.
    fn check_request_size(&self, count: i64) -> Result<(), TopicError> {
        let max = self.config.max_partitions_per_request;
        if count > max {
            return Err(TopicError::TooManyPartitions {
                requested: count,
                max,
            });
        }
        Ok(())
    }

    /// Refuses an assignment that would take any node past its partition capacity.
    fn check_capacity(
        &self,
        image: &MetadataImage,
        assignments: &[Vec<u64>],
    ) -> Result<(), TopicError> {
        let mut adding: BTreeMap<u64, u64> = BTreeMap::new();
        for node in assignments.iter().flatten() {
            *adding.entry(*node).or_default() += 1;
        }
        let mut hosted: BTreeMap<u64, u64> = BTreeMap::new();
        for partition in image.topics.values().flat_map(|t| &t.partitions) {
            for node in &partition.replicas {
                if adding.contains_key(node) {
                    *hosted.entry(*node).or_default() += 1;
                }
            }
        }
        let max = self.capacity.max_partitions;
        for (node, adding) in adding {
            let hosted = hosted.get(&node).copied().unwrap_or(0);
            if hosted + adding > max {
                return Err(TopicError::OverCapacity {
                    node,
                    hosted,
                    adding,
                    max,
                    basis: self.capacity.basis.clone(),
                });
            }
        }
        Ok(())
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.replication.image()
    }

    /// The live (registered, unfenced) nodes, by id.
    pub fn live_nodes(&self) -> Vec<u64> {
        self.image()
            .nodes
            .iter()
            .filter(|(_, n)| !n.fenced)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Checks a client's creation request against the metadata and returns the replica
    /// assignment it would get; nothing changes. The internal topics are created by the broker
    /// itself, with the partition count its coordinators hash over, and `__cluster_metadata` is
    /// Kafka's metadata log: clients may create neither.
    pub fn plan(
        &self,
        new: &NewTopic,
        manual: Option<Vec<Vec<u64>>>,
    ) -> Result<Vec<Vec<u64>>, TopicError> {
        refuse_protected(&new.name)?;
        self.plan_any(new, manual)
    }

    fn plan_any(
        &self,
        new: &NewTopic,
        manual: Option<Vec<Vec<u64>>>,
    ) -> Result<Vec<Vec<u64>>, TopicError> {
        validate_name(&new.name)?;
        let image = self.image();
        if image.topic(&new.name).is_some() {
            return Err(TopicError::AlreadyExists(new.name.clone()));
        }
        let canonical = new.name.replace('.', "_");
        if let Some(other) = image
            .topics
            .keys()
            .find(|t| t.replace('.', "_") == canonical)
        {
            return Err(TopicError::InvalidName {
                name: new.name.clone(),
                reason: format!("it collides with existing topic '{other}' ('.' and '_' are interchangeable in metrics names)"),
            });
        }
        for (name, value) in &new.overrides {
            topic::validate(name, value).map_err(TopicError::InvalidConfig)?;
        }
        if let Some(manual) = manual {
            self.check_request_size(manual.len() as i64)?;
            self.check_manual(&image, &manual)?;
            self.check_capacity(&image, &manual)?;
            return Ok(manual);
        }
        if new.num_partitions < 1 {
            return Err(TopicError::InvalidPartitions(new.num_partitions));
        }
        self.check_request_size(i64::from(new.num_partitions))?;
        let assignments = self.assign(new.num_partitions, new.replication_factor, 0)?;
        self.check_capacity(&image, &assignments)?;
        Ok(assignments)
    }

    /// Replica lists for `count` new partitions numbered from `first`: Kafka's rack-unaware
    /// placement, each partition's replicas on consecutive live nodes, leaders spread evenly.
    fn assign(
        &self,
        count: i32,
        replication_factor: i16,
        first: i32,
    ) -> Result<Vec<Vec<u64>>, TopicError> {
        let nodes = self.live_nodes();
        let rf = if replication_factor == -1 {
            self.config.default_replication_factor
        } else {
            replication_factor
        };
        if rf < 1 || rf as usize > nodes.len() {
            return Err(TopicError::InvalidReplicationFactor {
                factor: rf,
                live: nodes.len(),
            });
        }
        let n = nodes.len();
        let start = uuid::Uuid::new_v4().as_u128() as usize % n;
        Ok((first..first + count)
            .map(|p| {
                (0..rf as usize)
                    .map(|r| nodes[(start + p as usize + r) % n])
                    .collect()
            })
            .collect())
    }

    fn check_manual(&self, image: &MetadataImage, manual: &[Vec<u64>]) -> Result<(), TopicError> {
        let bad = |m: String| Err(TopicError::InvalidReplicaAssignment(m));
        let Some(first) = manual.first() else {
            return bad("no partitions were assigned".into());
        };
        for replicas in manual {
            if replicas.is_empty() || replicas.len() != first.len() {
                return bad("every partition needs the same, non-zero number of replicas".into());
            }
            let mut sorted = replicas.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != replicas.len() {
                return bad(format!("replicas {replicas:?} name a node twice"));
            }
            if let Some(unknown) = replicas.iter().find(|id| !image.nodes.contains_key(id)) {
                return bad(format!("node {unknown} is not registered"));
            }
        }
        Ok(())
    }

    /// Creates a topic for a client; returns its id once this node has applied it.
    pub async fn create(
        &self,
        new: NewTopic,
        manual: Option<Vec<Vec<u64>>>,
    ) -> Result<Uuid, TopicError> {
        refuse_protected(&new.name)?;
        self.create_any(new, manual).await
    }

    async fn create_any(
        &self,
        new: NewTopic,
        manual: Option<Vec<Vec<u64>>>,
    ) -> Result<Uuid, TopicError> {
        let partitions = self.plan_any(&new, manual)?;
        let id = Uuid::new_v4();
        let command = MetadataCommand::CreateTopic {
            name: new.name.clone(),
            topic_id: id.hyphenated().to_string(),
            partitions,
            configs: new.overrides.clone(),
        };
        self.propose(command).await?;
        let name = new.name.clone();
        self.wait_applied(move |image| {
            image
                .topic(&name)
                .is_some_and(|t| t.topic_id == id.hyphenated().to_string())
        })
        .await?;
        tracing::info!(topic = %new.name, partitions = new.num_partitions, "created topic");
        Ok(id)
    }

    /// Creates a topic unless one of that name exists (Metadata auto-creation).
    pub async fn create_or_get(&self, new: NewTopic) -> Result<(), TopicError> {
        if self.image().topic(&new.name).is_some() {
            return Ok(());
        }
        refuse_protected(&new.name)?;
        self.create_or_get_any(new).await
    }

    async fn create_or_get_any(&self, new: NewTopic) -> Result<(), TopicError> {
        if self.image().topic(&new.name).is_some() {
            return Ok(());
        }
        let name = new.name.clone();
        match self.create_any(new, None).await {
            Err(TopicError::AlreadyExists(_)) => {
                self.wait_applied(move |image| image.topic(&name).is_some())
                    .await
            }
            other => other.map(|_| ()),
        }
    }

    /// An internal topic (committed offsets, transaction state): compacted, as in Kafka.
    pub async fn ensure_internal(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        min_isr: Option<i32>,
    ) -> Result<(), TopicError> {
        let mut overrides: TopicOverrides = [
            ("cleanup.policy", "compact"),
            ("segment.bytes", "104857600"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Some(min) = min_isr {
            overrides.insert("min.insync.replicas".into(), min.to_string());
        }
        self.create_or_get_any(NewTopic {
            name: name.to_string(),
            num_partitions: partitions,
            replication_factor,
            overrides,
        })
        .await
    }

    /// Deletes a topic; returns its id once this node has removed it.
    pub async fn delete(&self, name: &str) -> Result<Uuid, TopicError> {
        if !self.config.delete_topic_enable {
            return Err(TopicError::DeletionDisabled);
        }
        let image = self.image();
        let topic = existing(&image, name)?;
        if is_internal(name) {
            // Every committed offset or transaction state would go with it.
            return Err(TopicError::Protected(format!(
                "Topic {name} is an internal topic and cannot be deleted."
            )));
        }
        let id = Uuid::parse_str(&topic.topic_id)
            .map_err(|e| TopicError::InvalidRequest(format!("topic id: {e}")))?;
        self.propose(MetadataCommand::DeleteTopic {
            name: name.to_string(),
        })
        .await?;
        let name_owned = name.to_string();
        self.wait_applied(move |image| image.topic(&name_owned).is_none())
            .await?;
        tracing::info!(topic = %name, "deleted topic");
        Ok(id)
    }

    /// Grows a topic to `count` partitions (CreatePartitions).
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        manual: Option<Vec<Vec<u64>>>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let image = self.image();
        let topic = existing(&image, name)?;
        if is_internal(name) {
            // Its coordinators hash ids over the partition count: adding partitions would move
            // every group or transactional id to another partition and lose its state.
            return Err(TopicError::Protected(format!(
                "The partition count of internal topic {name} cannot be changed."
            )));
        }
        let have = topic.partitions.len() as i32;
        if count < have {
            return Err(TopicError::FewerPartitions {
                current: have,
                requested: count,
            });
        }
        if count == have {
            return Err(TopicError::SamePartitions(have));
        }
        let rf = topic.partitions.first().map_or(1, |p| p.replicas.len()) as i16;
        self.check_request_size(i64::from(count) - i64::from(have))?;
        let assignments = match manual {
            Some(m) => {
                if m.len() as i32 != count - have {
                    return Err(TopicError::InvalidReplicaAssignment(format!(
                        "{} assignments were given for {} new partitions",
                        m.len(),
                        count - have
                    )));
                }
                self.check_manual(&image, &m)?;
                m
            }
            None => self.assign(count - have, rf, have)?,
        };
        self.check_capacity(&image, &assignments)?;
        if validate_only {
            return Ok(());
        }
        self.propose(MetadataCommand::AddPartitions {
            topic: name.to_string(),
            assignments,
        })
        .await?;
        let name_owned = name.to_string();
        self.wait_applied(move |image| {
            image
                .topic(&name_owned)
                .is_some_and(|t| t.partitions.len() as i32 >= count)
        })
        .await?;
        tracing::info!(topic = %name, from = have, to = count, "partitions added");
        Ok(())
    }

    /// Replaces a topic's overrides with `overrides` (validated as a whole first).
    pub async fn set_configs(
        &self,
        name: &str,
        overrides: TopicOverrides,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let image = self.image();
        let topic = existing(&image, name)?;
        for (k, v) in &overrides {
            topic::validate(k, v).map_err(TopicError::InvalidConfig)?;
        }
        if is_internal(name)
            && overrides
                .get("cleanup.policy")
                .is_none_or(|policy| policy.split(',').map(str::trim).ne(["compact"]))
        {
            // The coordinators keep their latest state per key: retention would delete it.
            return Err(TopicError::InvalidConfig(format!(
                "Internal topic {name} must keep cleanup.policy=compact."
            )));
        }
        if validate_only {
            return Ok(());
        }
        let mut changes: BTreeMap<String, Option<String>> = topic
            .configs
            .keys()
            .filter(|k| !overrides.contains_key(*k))
            .map(|k| (k.clone(), None))
            .collect();
        for (k, v) in &overrides {
            if topic.configs.get(k) != Some(v) {
                changes.insert(k.clone(), Some(v.clone()));
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        self.propose(MetadataCommand::AlterTopicConfigs {
            name: name.to_string(),
            configs: changes,
        })
        .await?;
        let name_owned = name.to_string();
        self.wait_applied(move |image| {
            image
                .topic(&name_owned)
                .is_none_or(|t| t.configs == overrides)
        })
        .await?;
        tracing::info!(topic = %name, "topic configs changed");
        Ok(())
    }

    async fn propose(&self, command: MetadataCommand) -> Result<(), TopicError> {
        match self.replication.controller().propose(command).await {
            Ok(answer) => answer.into_result().map_err(rejection),
            Err(e) => Err(quorum_error(e)),
        }
    }

    /// Waits until an image this node has applied satisfies `done`.
    async fn wait_applied(&self, done: impl Fn(&MetadataImage) -> bool) -> Result<(), TopicError> {
        let mut rx = self.replication.reconciled();
        let waited = tokio::time::timeout(APPLY_TIMEOUT, rx.wait_for(|image| done(image))).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(TopicError::NotAvailable(
                "this node is shutting down".into(),
            )),
            Err(_) => Err(TopicError::NotAvailable(format!(
                "the change was not applied on this node within {} ms",
                APPLY_TIMEOUT.as_millis()
            ))),
        }
    }
}

/// The topic called `name` in `image`, or `TopicError::Unknown`.
/// Refuses a client's creation of an internal topic or of Kafka's metadata log.
fn refuse_protected(name: &str) -> Result<(), TopicError> {
    if name == CLUSTER_METADATA_TOPIC || is_internal(name) {
        return Err(TopicError::Protected(format!(
            "Creation of internal topic {name} is prohibited."
        )));
    }
    Ok(())
}

fn existing<'a>(image: &'a MetadataImage, name: &str) -> Result<&'a TopicImage, TopicError> {
    image
        .topic(name)
        .ok_or_else(|| TopicError::Unknown(name.to_string()))
}

fn rejection(r: Rejection) -> TopicError {
    match r {
        Rejection::TopicExists { name } => TopicError::AlreadyExists(name),
        Rejection::UnknownTopic { name } => TopicError::Unknown(name),
        Rejection::InvalidTopicName { name } => TopicError::InvalidName {
            name,
            reason: "refused by the metadata quorum".into(),
        },
        Rejection::InvalidReplicaAssignment { reason, .. } => {
            TopicError::InvalidReplicaAssignment(reason)
        }
        Rejection::UnknownNode { node_id } => {
            TopicError::InvalidReplicaAssignment(format!("node {node_id} is not registered"))
        }
        other => TopicError::InvalidRequest(other.to_string()),
    }
}

fn quorum_error(e: ClusterError) -> TopicError {
    tracing::warn!(error = %e, "metadata change not committed");
    TopicError::NotAvailable(e.to_string())
}
