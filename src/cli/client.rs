//! What the client commands (produce, consume, topic, group) share: the `--bootstrap-server`
//! flag, the `--output` choice, librdkafka settings, a client context that keeps librdkafka's
//! last client-level error (so "cannot reach the broker" can say why), cluster metadata with a
//! deadline, and a flag raised by SIGINT/SIGTERM.

use clap::{Args, ValueEnum};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::{Client, ClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaRespErr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;

/// The flag every client command takes.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// The broker to bootstrap from, host:port (comma-separated for several).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
}

/// The flags of the admin commands (`topic ...`, `group ...`).
#[derive(Args, Debug, Clone)]
pub struct AdminArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// How long to wait for the broker, in ms.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// `human` text or `json` for scripts.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

impl AdminArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// An admin client and the cluster's metadata (every topic) read through it, which also
    /// tells an unreachable broker apart before any admin request is made.
    pub fn admin_with_metadata(&self) -> Result<(AdminClient<CliContext>, Metadata), ClientError> {
        let admin = self.admin()?;
        let metadata = metadata(admin.inner(), &self.client, None, self.timeout())?;
        Ok((admin, metadata))
    }

    /// An admin client; nothing is sent until it is used.
    pub fn admin(&self) -> Result<AdminClient<CliContext>, ClientError> {
        config(&self.client)
            .create_with_context(CliContext::default())
            .map_err(|source| ClientError::Create {
                bootstrap: self.client.bootstrap_server.clone(),
                source,
            })
    }

    /// Request and operation timeouts for admin calls.
    pub fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.timeout()))
            .operation_timeout(Some(self.timeout()))
    }
}

/// How a command prints its results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Text for people (the default).
    #[default]
    Human,
    /// JSON for scripts.
    Json,
}

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot create a Kafka client for {bootstrap}: {source}")]
    Create {
        bootstrap: String,
        source: KafkaError,
    },
    #[error("cannot reach the broker at {bootstrap} within {timeout_ms} ms{}", because(.last_error))]
    Unreachable {
        bootstrap: String,
        timeout_ms: u64,
        last_error: Option<String>,
    },
    #[error("cannot read cluster metadata from {bootstrap}: {source}")]
    Metadata {
        bootstrap: String,
        source: KafkaError,
    },
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    #[error("topic `{topic}` has no partition {partition} (it has {count})")]
    UnknownPartition {
        topic: String,
        partition: i32,
        count: usize,
    },
    #[error("topic `{topic}` is not available: {error:?}")]
    TopicUnavailable {
        topic: String,
        error: RDKafkaRespErr,
    },
    #[error("cannot write to standard output: {0}")]
    Stdout(#[source] std::io::Error),
    #[error("cannot start the client runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot handle SIGINT/SIGTERM: {0}")]
    Signals(#[source] std::io::Error),
}

fn because(last: &Option<String>) -> String {
    last.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
}

/// A client context that remembers librdkafka's last error (connection refused, name not
/// resolved, ...) instead of logging it, for the error message of a failed command.
#[derive(Clone, Default)]
pub struct CliContext {
    last_error: Arc<Mutex<Option<String>>>,
}

impl CliContext {
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().map(|e| e.clone()).unwrap_or(None)
    }
}

impl ClientContext for CliContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let text = if reason.is_empty() {
            error.to_string()
        } else {
            reason.to_string()
        };
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(text);
        }
    }
}

impl ConsumerContext for CliContext {}

impl AsRef<CliContext> for CliContext {
    fn as_ref(&self) -> &CliContext {
        self
    }
}

/// librdkafka settings common to every command.
pub fn config(args: &ClientArgs) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &args.bootstrap_server)
        .set("client.id", "spool-cli")
        // librdkafka logs through the `log` crate, which nothing here prints; errors reach
        // the user through `CliContext` and the command's own message.
        .set("log_level", "3");
    c
}

/// Sets each `key=value` of `pairs` (from `--producer-property` / `--consumer-property`).
pub fn set_properties(c: &mut ClientConfig, pairs: &[(String, String)]) {
    for (k, v) in pairs {
        c.set(k, v);
    }
}

/// True for the errors librdkafka gives when no broker answered.
pub fn is_unreachable(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::MessageTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::BrokerNotAvailable
        )
    )
}

/// Cluster metadata, or a clear error when no broker answers within `timeout`. With `topic`
/// `None` it lists all topics and never auto-creates one; a producer asking for one topic lets
/// the broker create it when the broker allows that (as Kafka's console producer does).
pub fn metadata<C: ClientContext + AsRef<CliContext>>(
    client: &Client<C>,
    args: &ClientArgs,
    topic: Option<&str>,
    timeout: Duration,
) -> Result<Metadata, ClientError> {
    client
        .fetch_metadata(topic, timeout)
        .map_err(|source| classify(source, (**client.context()).as_ref(), args, timeout))
}

/// Turns a client error into [`ClientError::Unreachable`] where it means no broker answered.
pub fn classify(
    source: KafkaError,
    context: &CliContext,
    args: &ClientArgs,
    timeout: Duration,
) -> ClientError {
    if is_unreachable(source.rdkafka_error_code()) {
        ClientError::Unreachable {
            bootstrap: args.bootstrap_server.clone(),
            timeout_ms: timeout.as_millis() as u64,
            last_error: context.last_error().or_else(|| Some(source.to_string())),
        }
    } else {
        ClientError::Metadata {
            bootstrap: args.bootstrap_server.clone(),
            source,
        }
    }
}

/// The partition ids of `topic`, in order, or an error naming the topic.
pub fn partitions(metadata: &Metadata, topic: &str) -> Result<Vec<i32>, ClientError> {
    let t = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| ClientError::UnknownTopic(topic.to_string()))?;
    match t.error() {
        None => {}
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => {
            return Err(ClientError::UnknownTopic(topic.to_string()))
        }
        Some(error) => {
            return Err(ClientError::TopicUnavailable {
                topic: topic.to_string(),
                error,
            })
        }
    }
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    Ok(ids)
}

/// A small runtime for awaiting librdkafka's admin futures (they are completed by librdkafka's
/// own threads; this only waits).
pub fn runtime() -> Result<tokio::runtime::Runtime, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)
}

/// A flag raised on SIGINT or SIGTERM, for loops that should end cleanly (leave the group,
/// commit) rather than die. The returned runtime must stay alive while the flag is watched.
pub fn stop_flag() -> Result<(tokio::runtime::Runtime, Arc<AtomicBool>), ClientError> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)?;
    let flag = Arc::new(AtomicBool::new(false));
    let (mut term, mut int) = runtime
        .block_on(async {
            Ok((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            ))
        })
        .map_err(ClientError::Signals)?;
    let raised = flag.clone();
    runtime.spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        raised.store(true, Ordering::SeqCst);
    });
    Ok((runtime, flag))
}

/// Writes a command's output; a reader that went away (`| head`) is not an error.
pub fn print(text: &str) -> Result<(), ClientError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(ClientError::Stdout(e)),
        _ => Ok(()),
    }
}

/// Pretty JSON and a newline, for `--output json`.
pub fn print_json(value: &serde_json::Value) -> Result<(), ClientError> {
    print(&format!("{value:#}\n"))
}

/// Parses repeated `key=value` arguments, naming the flag of a malformed one.
pub fn key_values(flag: &str, raw: &[String]) -> Result<Vec<(String, String)>, PropertyError> {
    raw.iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| PropertyError::NotKeyValue {
                    flag: flag.to_string(),
                    raw: kv.clone(),
                })
        })
        .collect()
}

#[derive(Debug, Error)]
pub enum PropertyError {
    #[error("{flag} `{raw}`: expected key=value")]
    NotKeyValue { flag: String, raw: String },
    #[error("unknown --property `{key}` (known: {known})")]
    Unknown { key: String, known: String },
    #[error("--property {key}=`{value}`: expected true or false")]
    NotBool { key: String, value: String },
}

/// Reads `\t`, `\n`, `\r` and `\\` in a property value as the characters they name, so that
/// `--property key.separator=\t` means a tab, as a user typing it expects.
pub fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// `true`/`false` of a boolean property.
pub fn parse_bool(key: &str, value: &str) -> Result<bool, PropertyError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(PropertyError::NotBool {
            key: key.to_string(),
            value: value.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_reads_common_escapes_and_keeps_the_rest() {
        assert_eq!(unescape(r"a\tb\nc\\d\qe\"), "a\tb\nc\\d\\qe\\");
    }

    #[test]
    fn key_values_name_the_flag_of_a_bad_pair() {
        let ok = key_values("--config", &["a=b=c".into()]).unwrap();
        assert_eq!(ok, [("a".to_string(), "b=c".to_string())]);
        let err = key_values("--config", &["nokey".into()]).unwrap_err();
        assert_eq!(err.to_string(), "--config `nokey`: expected key=value");
    }
}
