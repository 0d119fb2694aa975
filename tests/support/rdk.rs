//! librdkafka (through the rdkafka crate) as a real third-party client for tests.
#![allow(dead_code)]

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, DeliveryResult, ProducerContext};
use rdkafka::{ClientContext, TopicPartitionList};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One acknowledged (or failed) record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub value: String,
}

/// Collects delivery reports.
#[derive(Clone, Default)]
pub struct Deliveries {
    pub acked: Arc<Mutex<Vec<Delivered>>>,
    pub failed: Arc<Mutex<Vec<String>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => self.acked.lock().unwrap().push(Delivered {
                partition: m.partition(),
                offset: m.offset(),
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).into(),
                value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into(),
            }),
            Err((e, m)) => self.failed.lock().unwrap().push(format!(
                "{e} for {}",
                String::from_utf8_lossy(m.payload().unwrap_or_default())
            )),
        }
    }
}

/// A producer with the given extra settings, reporting into `deliveries`.
pub fn producer(
    addr: &str,
    settings: &[(&str, &str)],
    deliveries: &Deliveries,
) -> BaseProducer<Deliveries> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr).set("log_level", "3");
    for (k, v) in settings {
        c.set(*k, *v);
    }
    c.create_with_context(deliveries.clone()).expect("producer")
}

/// Reads every partition of `topic` from offset 0 until `expected` records arrived or `timeout`.
pub fn consume_all(
    addr: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
    timeout: Duration,
) -> Vec<Delivered> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "spool-test-reader")
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < expected && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(Delivered {
                partition: m.partition(),
                offset: m.offset(),
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).into(),
                value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into(),
            }),
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    out
}
