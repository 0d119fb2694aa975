'use strict'

// kafkajs idempotent producer against spool: InitProducerId, then 5,000
// records in 50 sends with producer id / epoch / sequence numbers; every
// record must be stored exactly once, in send order, and the stored batches
// must carry the producer id and sequence numbers kafkajs sent.

const { describe, test, before, after } = require('node:test')
const assert = require('assert/strict')
const { CompressionTypes } = require('kafkajs')

const { fetchAllRecords } = require('./lib/fetch')
const { makeRecord, recordingPartitioner, produceAll, verifyFetched } = require('./lib/workload')
const { createKafka, withBrokerLogs, uniqueTopic, startBroker, stopBroker } = require('./lib/harness')

const NUM_RECORDS = 5000
const NUM_PARTITIONS = 3
const BATCH_SIZE = 100
const TEST_TIMEOUT_MS = 180000

describe('kafkajs idempotent producer', { timeout: 10 * 60 * 1000 }, () => {
  let spool = null
  let kafka = null
  let admin = null

  before(async () => {
    spool = await startBroker()
    kafka = createKafka(spool, 'spool-compat-idempotent')
    admin = kafka.admin()
    await withBrokerLogs(null, spool, () => admin.connect())
  })

  after(async () => {
    if (admin) await admin.disconnect().catch(() => {})
    await stopBroker(spool)
  })

  test(`idempotent producer: ${NUM_RECORDS} records exactly once, in order`, { timeout: TEST_TIMEOUT_MS }, async t => {
    await withBrokerLogs(t, spool, async () => {
      const deadline = Date.now() + TEST_TIMEOUT_MS - 10000
      const topic = uniqueTopic('compat-idempotent')
      const created = await admin.createTopics({
        topics: [{ topic, numPartitions: NUM_PARTITIONS, replicationFactor: 1 }],
        waitForLeaders: true,
        timeout: 10000,
      })
      assert.equal(created, true)

      const baseTimestamp = Date.now() - NUM_RECORDS
      const records = []
      for (let i = 0; i < NUM_RECORDS; i++) records.push(makeRecord('idem', i, baseTimestamp))

      const { createPartitioner, assigned } = recordingPartitioner()
      const producer = kafka.producer({
        createPartitioner,
        allowAutoTopicCreation: false,
        idempotent: true,
        // kafkajs serialises idempotent produce requests per broker (EosManager
        // broker lock); 1 in flight is what kafkajs documents for idempotence.
        maxInFlightRequests: 1,
        // The idempotent producer insists on retries; bound them anyway (kafkajs
        // warns that this may weaken EoS; the test deadline bounds it too).
        retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 2000 },
      })
      let produced
      await producer.connect() // sends InitProducerId
      try {
        produced = await produceAll({
          producer,
          assigned,
          topic,
          records,
          batchSize: BATCH_SIZE,
          compression: CompressionTypes.None,
          numPartitions: NUM_PARTITIONS,
          deadline,
        })
      } finally {
        await producer.disconnect().catch(() => {})
      }
      const { placements, counts } = produced

      const offsets = await admin.fetchTopicOffsets(topic)
      for (const o of offsets) {
        assert.equal(Number(o.high), counts[o.partition], `high watermark of partition ${o.partition}`)
      }

      const { records: fetched, batches } = await fetchAllRecords({
        brokers: spool.brokers,
        topic,
        endOffsets: Object.fromEntries(offsets.map(o => [o.partition, Number(o.high)])),
        timeoutMs: Math.max(5000, deadline - Date.now()),
      })

      // exactly once: every key once, nothing extra
      verifyFetched({ records, placements, fetched, counts })
      const seenKeys = new Set()
      for (const messages of fetched.values()) {
        for (const m of messages) {
          const k = m.key.toString()
          assert.ok(!seenKeys.has(k), `duplicate record ${k}`)
          seenKeys.add(k)
        }
      }
      assert.equal(seenKeys.size, NUM_RECORDS)

      // in order: within a partition, records appear in send order
      for (const [p, messages] of fetched) {
        let last = -1
        for (const m of messages) {
          const i = Number(m.headers['x-index'].toString())
          assert.ok(i > last, `partition ${p}: record ${i} stored after record ${last}`)
          last = i
        }
      }

      // the stored batches carry the producer's id, epoch and sequences; on a
      // fresh topic with one producer, baseSequence == baseOffset per batch.
      const producerIds = new Set()
      for (const [p, list] of batches) {
        assert.ok(list.length > 0, `partition ${p} has batches`)
        for (const b of list) {
          producerIds.add(String(b.producerId))
          assert.notEqual(String(b.producerId), '-1', `partition ${p}: batch at ${b.firstOffset} has no producer id`)
          assert.ok(b.producerEpoch >= 0, `partition ${p}: batch at ${b.firstOffset} producer epoch ${b.producerEpoch}`)
          assert.equal(
            b.firstSequence,
            Number(b.firstOffset),
            `partition ${p}: batch at offset ${b.firstOffset} has baseSequence ${b.firstSequence}`
          )
        }
      }
      assert.equal(producerIds.size, 1, `one producer id expected, got ${[...producerIds]}`)
      t.diagnostic(`counts=${JSON.stringify(counts)} producerId=${[...producerIds][0]}`)
    })
  })
})
