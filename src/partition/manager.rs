//! The topic catalog of this node: topics, their ids, configs and partitions, kept on disk under
//! `<data_dir>/topics/<name>.toml` beside the partition directories `<data_dir>/<topic>-<n>/`.
//!
//! Locking rule: `topics` is read-mostly (a std `RwLock`, held only to clone an `Arc`); creation
//! and deletion are serialised by `admin_lock`, which is never held across `.await`.

use super::{Partition, PartitionError};
use crate::config::dynamic::{self, DynamicConfigs, Level};
use crate::config::topic::{self, TopicOverrides};
use crate::config::Config;
use crate::model::TopicPartition;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use thiserror::Error;
use uuid::Uuid;

const TOPICS_DIR: &str = "topics";
/// Kafka's longest legal topic name.
const MAX_TOPIC_NAME: usize = 249;

#[derive(Debug, Error)]
pub enum TopicError {
    #[error("Topic '{0}' already exists.")]
    AlreadyExists(String),
    #[error("Topic name '{name}' is illegal: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("Number of partitions must be at least 1, got {0}.")]
    InvalidPartitions(i32),
    #[error(
        "{requested} partitions in one request are more than max_partitions_per_request ({max})."
    )]
    TooManyPartitions { requested: i64, max: i64 },
    #[error("Node {node} hosts {hosted} partitions and cannot take {adding} more: it can open at most {max} ({basis}).")]
    OverCapacity {
        node: u64,
        hosted: u64,
        adding: u64,
        max: u64,
        basis: String,
    },
    #[error("Unable to replicate the partition {factor} time(s): the target replication factor of {factor} cannot be reached because only {live} node(s) are live.")]
    InvalidReplicationFactor { factor: i16, live: usize },
    #[error("{0}")]
    InvalidConfig(String),
    #[error("Invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("The metadata quorum did not apply the change: {0}")]
    NotAvailable(String),
    #[error("Topic '{0}' does not exist.")]
    Unknown(String),
    #[error("Topic deletion is disabled.")]
    DeletionDisabled,
    #[error(
        "Topic currently has {current} partitions, which is higher than the requested {requested}."
    )]
    FewerPartitions { current: i32, requested: i32 },
    #[error("Topic already has {0} partitions.")]
    SamePartitions(i32),
    #[error("{0}")]
    InvalidRequest(String),
    /// A change clients may not make to an internal or reserved topic.
    #[error("{0}")]
    Protected(String),
    #[error("topic catalog at {path}: {source}")]
    Storage {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Partition(#[from] PartitionError),
}

/// A topic and the partitions this node holds a replica of.
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    /// Indexed by partition number; `None` where this node holds no replica, or holds one
    /// that could not be opened.
    pub partitions: Vec<Option<Arc<Partition>>>,
    /// Replicas hosted here that could not be opened, with why: served as offline (Kafka's
    /// KAFKA_STORAGE_ERROR) and tried again at the next change of the topic.
    pub offline: BTreeMap<i32, String>,
    pub overrides: TopicOverrides,
}

impl Topic {
    /// The partition count of the topic (hosted here or not).
    pub fn partition_count(&self) -> i32 {
        self.partitions.len() as i32
    }

    /// Partition `index`, when this node holds a replica of it.
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .and_then(Option::as_ref)
    }

    /// The partitions held here.
    pub fn local(&self) -> impl Iterator<Item = &Arc<Partition>> {
        self.partitions.iter().flatten()
    }

    pub fn is_internal(&self) -> bool {
        is_internal(&self.name)
    }

    /// Whether partition `index` is hosted here but could not be opened.
    pub fn is_offline(&self, index: i32) -> bool {
        self.offline.contains_key(&index)
    }
}

#[derive(Serialize, Deserialize)]
struct TopicRecord {
    id: Uuid,
    partitions: i32,
    /// The partitions this node holds; all of them when absent.
    #[serde(default)]
    hosted: Option<Vec<i32>>,
    #[serde(default)]
    configs: TopicOverrides,
}

/// What to create.
pub struct NewTopic {
    pub name: String,
    pub num_partitions: i32,
    pub replication_factor: i16,
    pub overrides: TopicOverrides,
}

/// A topic as the cluster metadata describes it, for this node to hold its share of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// The partitions with a replica on this node.
    pub hosted: std::collections::BTreeSet<i32>,
    pub overrides: TopicOverrides,
}

pub struct TopicManager {
    config: Arc<Config>,
    /// Dynamic broker configs (the defaults of topics without overrides); changed under
    /// `admin_lock`.
    dynamic: RwLock<DynamicConfigs>,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    admin_lock: Mutex<()>,
}

fn storage_err(path: &Path) -> impl FnOnce(std::io::Error) -> TopicError + '_ {
    move |source| TopicError::Storage {
        path: path.to_path_buf(),
        source,
    }
}

impl TopicManager {
    /// Loads every topic in the catalog and opens (recovering, after an unclean shutdown) its
    /// partitions. Leftovers of interrupted deletions are removed.
    pub fn open(config: Arc<Config>, clean_shutdown: bool) -> Result<Self, TopicError> {
        let catalog = config.data_dir.join(TOPICS_DIR);
        std::fs::create_dir_all(&catalog).map_err(storage_err(&catalog))?;
        remove_deleted_dirs(&config.data_dir)?;
        let dynamic =
            DynamicConfigs::load(&config.data_dir).map_err(storage_err(&config.data_dir))?;
        let manager = Self {
            dynamic: RwLock::new(dynamic),
            config,
            topics: RwLock::new(HashMap::new()),
            admin_lock: Mutex::new(()),
        };
        for entry in std::fs::read_dir(&catalog).map_err(storage_err(&catalog))? {
            let path = entry.map_err(storage_err(&catalog))?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".toml"))
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(storage_err(&path))?;
            let record: TopicRecord = toml::from_str(&text).map_err(|e| TopicError::Storage {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?;
            let topic = manager.open_topic(name, record, clean_shutdown)?;
            manager
                .write_topics()
                .insert(name.to_string(), Arc::new(topic));
        }
        Ok(manager)
    }

    fn write_topics(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Topic>>> {
        self.topics.write().expect("topics lock poisoned")
    }

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Topic>>> {
        self.topics.read().expect("topics lock poisoned")
    }

    fn open_topic(
        &self,
        name: &str,
        record: TopicRecord,
        clean_shutdown: bool,
    ) -> Result<Topic, TopicError> {
        let log_config = topic::log_config(&self.config, &self.dynamic(), &record.configs);
        let mut partitions = Vec::new();
        let mut offline = BTreeMap::new();
        for p in 0..record.partitions {
            if record.hosted.as_ref().is_some_and(|h| !h.contains(&p)) {
                partitions.push(None);
                continue;
            }
            let tp = TopicPartition::new(name, p);
            let dir = self.config.data_dir.join(tp.dir_name());
            let opened = Partition::open(
                tp.clone(),
                &dir,
                log_config.clone(),
                clean_shutdown,
                self.local(),
            );
            let (partition, report) = match opened {
                Ok(opened) => opened,
                Err(e) => {
                    // One partition must not keep the broker from starting: it is offline.
                    crate::warn_limited!(partition = %tp, error = %e, "partition cannot be opened; serving it as offline");
                    offline.insert(p, e.to_string());
                    partitions.push(None);
                    continue;
                }
            };
            for problem in &report.problems {
                tracing::warn!(partition = %tp, "recovery: {problem}");
            }
            if report.recovered_segments > 0 {
                tracing::info!(partition = %tp, segments = report.recovered_segments, truncated_bytes = report.truncated_bytes, "recovered log");
            }
            partitions.push(Some(Arc::new(partition)));
        }
        Ok(Topic {
            name: name.to_string(),
            id: record.id,
            partitions,
            offline,
            overrides: record.configs,
        })
    }

    /// The dynamic broker configs in force.
    pub fn dynamic(&self) -> DynamicConfigs {
        self.dynamic
            .read()
            .expect("dynamic configs lock poisoned")
            .clone()
    }

    /// The effective value of topic config `name` for `topic`.
    pub fn effective(&self, topic: &Topic, name: &str) -> Option<String> {
        topic::effective(&self.config, &self.dynamic(), &topic.overrides, name)
    }

    /// Replaces the dynamic broker configs of one level (validated first), persists them, and
    /// re-applies every topic's log settings.
    pub fn set_dynamic_configs(
        &self,
        level: Level,
        configs: std::collections::BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _admin = self.admin_lock.lock().expect("admin lock poisoned");
        for (k, v) in &configs {
            dynamic::validate(k, v).map_err(|e| match e {
                dynamic::DynamicError::NotDynamic(m) => TopicError::InvalidRequest(m),
                dynamic::DynamicError::Invalid(m) => TopicError::InvalidConfig(m),
            })?;
        }
        if validate_only {
            return Ok(());
        }
        let mut next = self.dynamic();
        *next.level_mut(level) = configs;
        next.store(&self.config.data_dir)
            .map_err(storage_err(&self.config.data_dir))?;
        *self.dynamic.write().expect("dynamic configs lock poisoned") = next;
        for t in self.list() {
            self.apply_log_config(&t);
        }
        tracing::info!(?level, "dynamic broker configs changed");
        Ok(())
    }

    fn apply_log_config(&self, t: &Topic) {
        let log_config = topic::log_config(&self.config, &self.dynamic(), &t.overrides);
        for p in t.local() {
            p.set_config(log_config.clone());
        }
    }

    fn local(&self) -> u64 {
        self.config.node_id as u64
    }

    /// The topic called `name`, or `TopicError::Unknown`.
    fn existing(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        self.get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_topics().get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.read_topics().values().find(|t| t.id == id).cloned()
    }

    /// All topics, sorted by name.
    pub fn list(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.read_topics().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Partition `partition` of `topic`, when this node holds a replica of it.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.get(topic)?.partition(partition).cloned()
    }

    /// Every partition this node holds.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.read_topics()
            .values()
            .flat_map(|t| t.local().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Makes this node hold its share of a topic as the metadata describes it: the catalog
    /// record first (synced), then partitions newly hosted here are opened (created when new)
    /// and partitions no longer hosted here are removed. A local topic of the same name with
    /// another id is an older incarnation: it is deleted first.
    pub fn apply(&self, spec: &TopicSpec) -> Result<Arc<Topic>, TopicError> {
        if let Some(old) = self.get(&spec.name) {
            if old.id != spec.id {
                self.delete(&spec.name)?;
            }
        }
        let _admin = self.admin_lock.lock().expect("admin lock poisoned");
        let current = self.get(&spec.name);
        if let Some(t) = &current {
            let same_hosted = t.partition_count() == spec.partitions
                && t.offline.is_empty()
                && (0..spec.partitions)
                    .all(|p| t.partition(p).is_some() == spec.hosted.contains(&p));
            if same_hosted && t.overrides == spec.overrides {
                return Ok(t.clone());
            }
        }
        let log_config = topic::log_config(&self.config, &self.dynamic(), &spec.overrides);
        let mut partitions = Vec::with_capacity(spec.partitions as usize);
        let mut offline = BTreeMap::new();
        for p in 0..spec.partitions {
            let existing = current.as_ref().and_then(|t| t.partition(p)).cloned();
            let entry = match (existing, spec.hosted.contains(&p)) {
                (Some(partition), true) => {
                    partition.set_config(log_config.clone());
                    Some(partition)
                }
                (None, true) => {
                    let tp = TopicPartition::new(&spec.name, p);
                    let dir = self.config.data_dir.join(tp.dir_name());
                    match Partition::open(tp.clone(), &dir, log_config.clone(), true, self.local())
                    {
                        Ok((partition, _)) => Some(Arc::new(partition)),
                        Err(e) => {
                            crate::warn_limited!(partition = %tp, error = %e, "partition cannot be opened; serving it as offline");
                            offline.insert(p, e.to_string());
                            None
                        }
                    }
                }
                (Some(partition), false) => {
                    remove_partition_dir(&partition, spec.id)?;
                    None
                }
                (None, false) => None,
            };
            partitions.push(entry);
        }
        // The catalog names only what opened: a restart never finds a partition claimed that
        // was not there (the metadata still assigns the offline ones, so they are tried again).
        let record = TopicRecord {
            id: spec.id,
            partitions: spec.partitions,
            hosted: Some(
                (0..spec.partitions)
                    .filter(|p| partitions[*p as usize].is_some())
                    .collect(),
            ),
            configs: spec.overrides.clone(),
        };
        let path = self.catalog_path(&spec.name);
        let text = toml::to_string(&record).expect("topic record serialises");
        crate::log::write_atomically(&path, text.as_bytes()).map_err(storage_err(&path))?;
        let topic = Arc::new(Topic {
            name: spec.name.clone(),
            id: spec.id,
            partitions,
            offline,
            overrides: spec.overrides.clone(),
        });
        self.write_topics().insert(spec.name.clone(), topic.clone());
        tracing::info!(topic = %spec.name, partitions = spec.partitions, hosted = spec.hosted.len(), offline = topic.offline.len(), "topic applied");
        Ok(topic)
    }

    /// Deletes a topic: it leaves the catalog at once; its directories are renamed aside and
    /// removed. Requests still holding a partition finish against the unlinked files.
    pub fn delete(&self, name: &str) -> Result<Uuid, TopicError> {
        let _admin = self.admin_lock.lock().expect("admin lock poisoned");
        let topic = self.existing(name)?;
        let path = self.catalog_path(name);
        std::fs::remove_file(&path).map_err(storage_err(&path))?;
        self.write_topics().remove(name);
        for p in topic.local() {
            remove_partition_dir(p, topic.id)?;
        }
        tracing::info!(topic = %name, "deleted topic");
        Ok(topic.id)
    }

    fn catalog_path(&self, name: &str) -> PathBuf {
        self.config
            .data_dir
            .join(TOPICS_DIR)
            .join(format!("{name}.toml"))
    }
}

/// Whether `name` is one of the internal topics the coordinators write (committed offsets,
/// transaction state).
pub fn is_internal(name: &str) -> bool {
    name == crate::group::store::OFFSETS_TOPIC || name == crate::txn::store::TXN_TOPIC
}

/// The name of Kafka's metadata log, which no client may create (Kafka refuses it too).
pub const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";

/// Kafka's topic name rules: 1 to 249 of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    let bad = |reason: &str| {
        Err(TopicError::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return bad("the name is empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if name.len() > MAX_TOPIC_NAME {
        return bad("it is longer than 249 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return bad("it contains characters other than ASCII alphanumerics, '.', '_' and '-'");
    }
    Ok(())
}

/// Renames a partition's directory aside, then removes it; a crash in between leaves a
/// `-delete` directory that the next start removes.
fn remove_partition_dir(p: &Partition, id: Uuid) -> Result<(), TopicError> {
    let dir = p.dir();
    // Within a file name's 255 bytes, as Kafka's delete-dir names are: a 249-character topic
    // leaves no room for the whole name and the suffix, so the name is cut.
    let suffix = format!("-{}.{}-delete", p.tp().partition, id.simple());
    let topic = &p.tp().topic;
    let keep = topic.len().min(255 - suffix.len());
    let aside = dir.with_file_name(format!("{}{suffix}", &topic[..keep]));
    std::fs::rename(&dir, &aside).map_err(storage_err(&dir))?;
    std::fs::remove_dir_all(&aside).map_err(storage_err(&aside))
}

fn remove_deleted_dirs(data_dir: &Path) -> Result<(), TopicError> {
    for entry in std::fs::read_dir(data_dir).map_err(storage_err(data_dir))? {
        let path = entry.map_err(storage_err(data_dir))?.path();
        if path.is_dir() && path.to_string_lossy().ends_with("-delete") {
            std::fs::remove_dir_all(&path).map_err(storage_err(&path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn manager(dir: &Path) -> TopicManager {
        let mut config = Config::load(None, Vec::new(), &[]).unwrap();
        config.data_dir = dir.to_path_buf();
        TopicManager::open(Arc::new(config), true).unwrap()
    }

    fn spec(name: &str, partitions: i32, hosted: &[i32]) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions,
            hosted: hosted.iter().copied().collect::<BTreeSet<i32>>(),
            overrides: Default::default(),
        }
    }

    #[test]
    fn topics_survive_reopen_with_ids_configs_and_hosted_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        let mut t = spec("orders", 3, &[0, 2]);
        t.overrides.insert("retention.ms".into(), "1000".into());
        let id = m.apply(&t).unwrap().id;
        drop(m);
        let m = manager(dir.path());
        let t = m.get("orders").unwrap();
        assert_eq!((t.id, t.partition_count()), (id, 3));
        assert!(t.partition(0).is_some() && t.partition(1).is_none() && t.partition(2).is_some());
        assert_eq!(
            t.overrides.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        assert!(m.get_by_id(id).is_some());
        assert_eq!(m.all_partitions().len(), 2);
    }

    #[test]
    fn apply_opens_new_replicas_removes_dropped_ones_and_replaces_old_incarnations() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        let mut t = spec("moving", 2, &[0]);
        m.apply(&t).unwrap();
        assert!(dir.path().join("moving-0").exists());
        t.hosted = [1].into();
        m.apply(&t).unwrap();
        assert!(!dir.path().join("moving-0").exists());
        assert!(dir.path().join("moving-1").exists());
        let again = spec("moving", 2, &[1]);
        let replaced = m.apply(&again).unwrap();
        assert_eq!(replaced.id, again.id);
        assert_eq!(m.list().len(), 1);
    }

    #[test]
    fn delete_removes_data_and_catalog_entry() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        m.apply(&spec("gone", 2, &[0, 1])).unwrap();
        m.delete("gone").unwrap();
        assert!(m.get("gone").is_none());
        assert!(!dir.path().join("gone-0").exists());
        assert!(matches!(m.delete("gone"), Err(TopicError::Unknown(_))));
        drop(m);
        assert!(manager(dir.path()).get("gone").is_none());
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("orders.v1-x_y").is_ok());
        for bad in ["", ".", "..", "bad name", &"x".repeat(250)] {
            assert!(matches!(
                validate_name(bad),
                Err(TopicError::InvalidName { .. })
            ));
        }
    }
}
