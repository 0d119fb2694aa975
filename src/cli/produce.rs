//! `spool produce`: one record per line of standard input, like Kafka's console producer.
//! Waits for every delivery; exits non-zero when the broker cannot be reached or refuses
//! records, printing the first error and how many records failed.

use super::client::{self, CliContext, ClientArgs, ClientError, PropertyError};
use super::line_reader::{LineError, LineReader, LineRecord};
use clap::{Args, ValueEnum};
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;

#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The topic to write to (created by the broker when it auto-creates topics).
    #[arg(long)]
    topic: String,
    /// How lines become records, as in Kafka's console producer: parse.key, key.separator,
    /// parse.headers, headers.delimiter, headers.separator, headers.key.separator, null.marker,
    /// ignore.error. `\t` and `\n` in values mean tab and newline. Repeatable.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    property: Vec<String>,
    /// Acknowledgements to wait for: 0, 1, or all (-1).
    #[arg(long, default_value = "all", allow_hyphen_values = true, value_parser = ["0", "1", "all", "-1"])]
    acks: String,
    /// Compression codec of record batches.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    compression: Compression,
    /// Largest record batch, in bytes (librdkafka batch.size).
    #[arg(long, value_name = "BYTES")]
    batch_size: Option<u32>,
    /// How long to wait for more records before sending a batch, in ms.
    #[arg(long, value_name = "MS")]
    linger_ms: Option<u32>,
    /// Give up on the broker (at start) and on each record after this long, in ms.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    timeout_ms: u64,
    /// Any librdkafka producer setting, as key=value. Repeatable.
    #[arg(long = "producer-property", value_name = "KEY=VALUE")]
    producer_property: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    fn librdkafka_name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Error)]
pub enum ProduceError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Property(#[from] PropertyError),
    #[error("cannot read standard input: {0}")]
    Stdin(#[source] std::io::Error),
    #[error("{source} ({delivered} records before it were delivered)")]
    BadLine { source: LineError, delivered: u64 },
    #[error("cannot queue a record for topic `{topic}`: {source}")]
    Enqueue { topic: String, source: KafkaError },
    #[error(
        "{failed} of {total} records were not delivered to topic `{topic}`; first error: {first}"
    )]
    NotDelivered {
        topic: String,
        failed: u64,
        total: u64,
        first: String,
    },
}

/// What came back from the broker, record by record.
#[derive(Default)]
struct Report {
    delivered: u64,
    failed: u64,
    first_error: Option<String>,
}

#[derive(Clone, Default)]
struct ProduceContext {
    client: CliContext,
    report: Arc<Mutex<Report>>,
}

impl AsRef<CliContext> for ProduceContext {
    fn as_ref(&self) -> &CliContext {
        &self.client
    }
}

impl ClientContext for ProduceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.client.error(error, reason)
    }
}

impl ProducerContext for ProduceContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let Ok(mut report) = self.report.lock() else {
            return;
        };
        match result {
            Ok(_) => report.delivered += 1,
            Err((e, m)) => {
                report.failed += 1;
                if report.first_error.is_none() {
                    use rdkafka::message::Message;
                    let mut text = format!("{e} (partition {})", m.partition());
                    if let Some(last) = self.client.last_error() {
                        text.push_str(&format!("; last client error: {last}"));
                    }
                    report.first_error = Some(text);
                }
            }
        }
    }
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let reader = LineReader::from_properties(&client::key_values("--property", &args.property)?)?;
    let producer = create_producer(&args)?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let metadata = client::metadata(producer.client(), &args.client, Some(&args.topic), timeout)?;
    client::partitions(&metadata, &args.topic)?;

    let read = send_lines(&producer, &args.topic, &reader, std::io::stdin().lock());
    // Wait for every record sent so far, even when reading stopped at a bad line. Each record
    // fails by itself after message.timeout.ms, so this flush ends shortly after that.
    let _ = producer.flush(timeout + Duration::from_secs(5));
    let context = producer.client().context();
    let report = context
        .report
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match read {
        Err(ProduceError::BadLine { source, .. }) => Err(ProduceError::BadLine {
            source,
            delivered: report.delivered,
        }
        .into()),
        Err(e) => Err(e.into()),
        Ok(total) if report.failed > 0 || report.delivered < total => {
            Err(ProduceError::NotDelivered {
                topic: args.topic.clone(),
                failed: total - report.delivered,
                total,
                first: report
                    .first_error
                    .clone()
                    .unwrap_or_else(|| "no delivery report before the timeout".into()),
            }
            .into())
        }
        Ok(_) => Ok(()),
    }
}

fn create_producer(args: &ProduceArgs) -> Result<ThreadedProducer<ProduceContext>, ProduceError> {
    let mut c = client::config(&args.client);
    c.set("acks", &args.acks)
        .set("compression.type", args.compression.librdkafka_name())
        .set("message.timeout.ms", args.timeout_ms.to_string())
        // Java's partitioner: keyed records land where Kafka's own tools would put them.
        .set("partitioner", "murmur2_random");
    if let Some(b) = args.batch_size {
        c.set("batch.size", b.to_string());
    }
    if let Some(l) = args.linger_ms {
        c.set("linger.ms", l.to_string());
    }
    client::set_properties(
        &mut c,
        &client::key_values("--producer-property", &args.producer_property)?,
    );
    c.create_with_context(ProduceContext::default())
        .map_err(|source| {
            ClientError::Create {
                bootstrap: args.client.bootstrap_server.clone(),
                source,
            }
            .into()
        })
}

/// Sends each line of `input` as a record; returns how many were sent.
fn send_lines(
    producer: &ThreadedProducer<ProduceContext>,
    topic: &str,
    reader: &LineReader,
    mut input: impl BufRead,
) -> Result<u64, ProduceError> {
    let mut sent = 0u64;
    let mut buf = Vec::new();
    for line_number in 1.. {
        buf.clear();
        if input
            .read_until(b'\n', &mut buf)
            .map_err(ProduceError::Stdin)?
            == 0
        {
            break;
        }
        let line = String::from_utf8_lossy(strip_line_end(&buf));
        let record = reader
            .parse(line_number, &line)
            .map_err(|source| ProduceError::BadLine {
                source,
                delivered: 0,
            })?;
        send(producer, topic, &record)?;
        sent += 1;
    }
    Ok(sent)
}

fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Queues one record, waiting while librdkafka's local queue is full.
fn send(
    producer: &ThreadedProducer<ProduceContext>,
    topic: &str,
    record: &LineRecord,
) -> Result<(), ProduceError> {
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
    for (name, value) in &record.headers {
        headers = headers.insert(Header {
            key: name,
            value: value.as_deref(),
        });
    }
    let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).headers(headers);
    if let Some(k) = &record.key {
        r = r.key(k.as_slice());
    }
    if let Some(v) = &record.value {
        r = r.payload(v.as_slice());
    }
    loop {
        match producer.send(r) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                // The polling thread drains delivery reports; give it a moment.
                std::thread::sleep(Duration::from_millis(10));
                r = back;
            }
            Err((source, _)) => {
                return Err(ProduceError::Enqueue {
                    topic: topic.to_string(),
                    source,
                })
            }
        }
    }
}
