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
use std::collections::HashMap;
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
    #[error("Replication factor {0} is invalid: this cluster has one node.")]
    InvalidReplicationFactor(i16),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("Manual replica assignments are not supported on a single node.")]
    InvalidReplicaAssignment,
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
    #[error("topic catalog at {path}: {source}")]
    Storage {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Partition(#[from] PartitionError),
}

/// A topic and its partitions on this node.
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<Arc<Partition>>,
    pub overrides: TopicOverrides,
}

#[derive(Serialize, Deserialize)]
struct TopicRecord {
    id: Uuid,
    partitions: i32,
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
        for p in 0..record.partitions {
            let tp = TopicPartition::new(name, p);
            let dir = self.config.data_dir.join(tp.dir_name());
            let (partition, report) =
                Partition::open(tp.clone(), &dir, log_config.clone(), clean_shutdown)?;
            for problem in &report.problems {
                tracing::warn!(partition = %tp, "recovery: {problem}");
            }
            if report.recovered_segments > 0 {
                tracing::info!(partition = %tp, segments = report.recovered_segments, truncated_bytes = report.truncated_bytes, "recovered log");
            }
            partitions.push(Arc::new(partition));
        }
        Ok(Topic {
            name: name.to_string(),
            id: record.id,
            partitions,
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

    /// Replaces a topic's overrides (validated; nothing changes unless all are valid), persists
    /// them, and applies the resulting log settings to its partitions at once.
    pub fn set_topic_configs(
        &self,
        name: &str,
        overrides: TopicOverrides,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _admin = self.admin_lock.lock().expect("admin lock poisoned");
        let current = self.existing(name)?;
        for (k, v) in &overrides {
            topic::validate(k, v).map_err(TopicError::InvalidConfig)?;
        }
        if validate_only {
            return Ok(());
        }
        self.write_record(&current, current.partitions.len() as i32, &overrides)?;
        let replaced = Arc::new(Topic {
            name: current.name.clone(),
            id: current.id,
            partitions: current.partitions.clone(),
            overrides,
        });
        self.apply_log_config(&replaced);
        self.write_topics().insert(name.to_string(), replaced);
        tracing::info!(topic = %name, "topic configs changed");
        Ok(())
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
        for p in &t.partitions {
            p.set_config(log_config.clone());
        }
    }

    fn write_record(
        &self,
        t: &Topic,
        partitions: i32,
        configs: &TopicOverrides,
    ) -> Result<(), TopicError> {
        let record = TopicRecord {
            id: t.id,
            partitions,
            configs: configs.clone(),
        };
        let path = self.catalog_path(&t.name);
        let text = toml::to_string(&record).expect("topic record serialises");
        crate::log::write_atomically(&path, text.as_bytes()).map_err(storage_err(&path))
    }

    /// Grows a topic to `count` partitions (CreatePartitions): the catalog record first, then
    /// the new partitions' directories.
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _admin = self.admin_lock.lock().expect("admin lock poisoned");
        let current = self.existing(name)?;
        let have = current.partitions.len() as i32;
        if count < have {
            return Err(TopicError::FewerPartitions {
                current: have,
                requested: count,
            });
        }
        if count == have {
            return Err(TopicError::SamePartitions(have));
        }
        if validate_only {
            return Ok(());
        }
        self.write_record(&current, count, &current.overrides)?;
        let log_config = topic::log_config(&self.config, &self.dynamic(), &current.overrides);
        let mut partitions = current.partitions.clone();
        for p in have..count {
            let tp = TopicPartition::new(name, p);
            let dir = self.config.data_dir.join(tp.dir_name());
            let (partition, _) = Partition::open(tp, &dir, log_config.clone(), true)?;
            partitions.push(Arc::new(partition));
        }
        let grown = Arc::new(Topic {
            name: current.name.clone(),
            id: current.id,
            partitions,
            overrides: current.overrides.clone(),
        });
        self.write_topics().insert(name.to_string(), grown);
        tracing::info!(topic = %name, from = have, to = count, "partitions added");
        Ok(())
    }

    /// Creates a topic, or returns it when it already exists (a concurrent creation won).
    pub fn create_or_get(&self, new: NewTopic) -> Result<Arc<Topic>, TopicError> {
        let name = new.name.clone();
        match self.create(new) {
            Err(TopicError::AlreadyExists(_)) => self.existing(&name),
            other => other,
        }
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

    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        let t = self.get(topic)?;
        usize::try_from(partition)
            .ok()
            .and_then(|p| t.partitions.get(p).cloned())
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.read_topics()
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    /// Checks a creation request without side effects.
    pub fn check_new(&self, new: &NewTopic) -> Result<(), TopicError> {
        validate_name(&new.name)?;
        if self.get(&new.name).is_some() {
            return Err(TopicError::AlreadyExists(new.name.clone()));
        }
        let canonical = new.name.replace('.', "_");
        if let Some(other) = self
            .read_topics()
            .keys()
            .find(|t| t.replace('.', "_") == canonical)
        {
            return Err(TopicError::InvalidName {
                name: new.name.clone(),
                reason: format!("it collides with existing topic '{other}' ('.' and '_' are interchangeable in metrics names)"),
            });
        }
        if new.num_partitions < 1 {
            return Err(TopicError::InvalidPartitions(new.num_partitions));
        }
        if new.replication_factor != 1 {
            return Err(TopicError::InvalidReplicationFactor(new.replication_factor));
        }
        for (name, value) in &new.overrides {
            topic::validate(name, value).map_err(TopicError::InvalidConfig)?;
        }
        Ok(())
    }

    /// An internal topic (committed offsets, transaction state), created with `partitions` when
    /// missing; compacted, as in Kafka, so it keeps the latest record of each key.
    pub fn ensure_internal(&self, name: &str, partitions: i32) -> Result<Arc<Topic>, TopicError> {
        if let Some(t) = self.get(name) {
            return Ok(t);
        }
        let overrides = [
            ("cleanup.policy", "compact"),
            ("segment.bytes", "104857600"),
        ];
        self.create_or_get(NewTopic {
            name: name.to_string(),
            num_partitions: partitions,
            replication_factor: 1,
            overrides: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    /// Creates a topic: catalog record first (synced), then its partition directories.
    pub fn create(&self, new: NewTopic) -> Result<Arc<Topic>, TopicError> {
        let _admin = self.admin_lock.lock().expect("admin lock poisoned");
        self.check_new(&new)?;
        let record = TopicRecord {
            id: Uuid::new_v4(),
            partitions: new.num_partitions,
            configs: new.overrides,
        };
        let path = self.catalog_path(&new.name);
        let text = toml::to_string(&record).expect("topic record serialises");
        crate::log::write_atomically(&path, text.as_bytes()).map_err(storage_err(&path))?;
        let topic = Arc::new(self.open_topic(&new.name, record, true)?);
        self.write_topics().insert(new.name.clone(), topic.clone());
        tracing::info!(topic = %new.name, partitions = new.num_partitions, "created topic");
        Ok(topic)
    }

    /// Deletes a topic: it leaves the catalog at once; its directories are renamed aside and
    /// removed. Requests still holding a partition finish against the unlinked files.
    pub fn delete(&self, name: &str) -> Result<Uuid, TopicError> {
        if !self.config.delete_topic_enable {
            return Err(TopicError::DeletionDisabled);
        }
        let _admin = self.admin_lock.lock().expect("admin lock poisoned");
        let topic = self.existing(name)?;
        let path = self.catalog_path(name);
        std::fs::remove_file(&path).map_err(storage_err(&path))?;
        self.write_topics().remove(name);
        for p in &topic.partitions {
            let dir = p.dir();
            let aside = dir.with_file_name(format!(
                "{}.{}-delete",
                p.tp().dir_name(),
                topic.id.simple()
            ));
            std::fs::rename(&dir, &aside).map_err(storage_err(&dir))?;
            std::fs::remove_dir_all(&aside).map_err(storage_err(&aside))?;
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

    fn manager(dir: &Path) -> TopicManager {
        let mut config = Config::load(None, Vec::new(), &[]).unwrap();
        config.data_dir = dir.to_path_buf();
        TopicManager::open(Arc::new(config), true).unwrap()
    }

    fn new(name: &str, partitions: i32) -> NewTopic {
        NewTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: 1,
            overrides: Default::default(),
        }
    }

    #[test]
    fn topics_survive_reopen_with_ids_and_configs() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        let mut t = new("orders", 3);
        t.overrides.insert("retention.ms".into(), "1000".into());
        let id = m.create(t).unwrap().id;
        drop(m);
        let m = manager(dir.path());
        let t = m.get("orders").unwrap();
        assert_eq!((t.id, t.partitions.len()), (id, 3));
        assert_eq!(
            t.overrides.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        assert!(m.get_by_id(id).is_some());
    }

    #[test]
    fn bad_requests_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        assert!(matches!(
            m.create(new("bad name", 1)),
            Err(TopicError::InvalidName { .. })
        ));
        assert!(matches!(
            m.create(new("x", 0)),
            Err(TopicError::InvalidPartitions(0))
        ));
        m.create(new("a.b", 1)).unwrap();
        assert!(matches!(
            m.create(new("a.b", 1)),
            Err(TopicError::AlreadyExists(_))
        ));
        assert!(matches!(
            m.create(new("a_b", 1)),
            Err(TopicError::InvalidName { .. })
        ));
        let mut t = new("c", 1);
        t.overrides.insert("retention.ms".into(), "x".into());
        assert!(matches!(m.create(t), Err(TopicError::InvalidConfig(_))));
    }

    #[test]
    fn delete_removes_data_and_catalog_entry() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        m.create(new("gone", 2)).unwrap();
        m.delete("gone").unwrap();
        assert!(m.get("gone").is_none());
        assert!(!dir.path().join("gone-0").exists());
        assert!(matches!(m.delete("gone"), Err(TopicError::Unknown(_))));
        drop(m);
        assert!(manager(dir.path()).get("gone").is_none());
    }
}
