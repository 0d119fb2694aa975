'use strict'

// kafkajs 2.2.4 against spool: for each compression codec, create a
// 3-partition topic, produce 10,000 keyed records (distinct key, value and two
// headers) with acks=-1, and read every record back with a group-less Fetch
// loop (see lib/fetch.js for why the kafkajs Consumer cannot be used yet).

const { describe, test, before, after } = require('node:test')
const assert = require('assert/strict')

const { COMPRESSIONS, snapshotCounters } = require('./lib/codecs')
const { fetchAllRecords } = require('./lib/fetch')
const { makeRecord, recordingPartitioner, produceAll, verifyFetched } = require('./lib/workload')
const { createKafka, withBrokerLogs, uniqueTopic, startBroker, stopBroker } = require('./lib/harness')

const NUM_RECORDS = Number(process.env.COMPAT_NUM_RECORDS || 10000)
const NUM_PARTITIONS = 3
const BATCH_SIZE = 500
const TEST_TIMEOUT_MS = 240000

describe('kafkajs produce/fetch roundtrip per compression codec', { timeout: 20 * 60 * 1000 }, () => {
  let spool = null
  let kafka = null
  let admin = null

  before(async () => {
    spool = await startBroker()
    kafka = createKafka(spool, 'spool-compat-compression')
    admin = kafka.admin()
    await withBrokerLogs(null, spool, () => admin.connect())
  })

  after(async () => {
    if (admin) await admin.disconnect().catch(() => {})
    await stopBroker(spool)
  })

  for (const { name, type } of COMPRESSIONS) {
    test(`${name}: 3 partitions, ${NUM_RECORDS} keyed records with headers`, { timeout: TEST_TIMEOUT_MS }, async t => {
      await withBrokerLogs(t, spool, async () => {
        const deadline = Date.now() + TEST_TIMEOUT_MS - 10000
        const topic = uniqueTopic(`compat-${name}`)

        const created = await admin.createTopics({
          topics: [{ topic, numPartitions: NUM_PARTITIONS, replicationFactor: 1 }],
          waitForLeaders: true,
          timeout: 10000,
        })
        assert.equal(created, true, `createTopics should report that ${topic} was created`)

        const meta = await admin.fetchTopicMetadata({ topics: [topic] })
        assert.equal(meta.topics.length, 1)
        assert.deepEqual(
          meta.topics[0].partitions.map(p => p.partitionId).sort(),
          [0, 1, 2],
          'topic metadata partitions'
        )

        const baseTimestamp = Date.now() - NUM_RECORDS
        const records = []
        for (let i = 0; i < NUM_RECORDS; i++) records.push(makeRecord(name, i, baseTimestamp))

        const { createPartitioner, assigned } = recordingPartitioner()
        const producer = kafka.producer({ createPartitioner, allowAutoTopicCreation: false })
        const before = snapshotCounters()
        let produced
        await producer.connect()
        try {
          produced = await produceAll({
            producer,
            assigned,
            topic,
            records,
            batchSize: BATCH_SIZE,
            compression: type,
            numPartitions: NUM_PARTITIONS,
            deadline,
          })
        } finally {
          await producer.disconnect().catch(() => {})
        }
        const { placements, counts } = produced
        for (let p = 0; p < NUM_PARTITIONS; p++) {
          assert.ok(counts[p] > 0, `the key hash should spread records over all partitions (p${p}: ${counts[p]})`)
        }
        const afterProduce = snapshotCounters()
        if (name !== 'none') {
          assert.ok(
            afterProduce[name].compress > before[name].compress,
            `${name} codec should have been used by the producer`
          )
        }

        // ListOffsets (earliest/latest) must agree with what was produced.
        const offsets = await admin.fetchTopicOffsets(topic)
        assert.equal(offsets.length, NUM_PARTITIONS)
        for (const o of offsets) {
          assert.equal(Number(o.low), 0, `low watermark of partition ${o.partition}`)
          assert.equal(Number(o.high), counts[o.partition], `high watermark of partition ${o.partition}`)
        }

        const endOffsets = Object.fromEntries(offsets.map(o => [o.partition, Number(o.high)]))
        const { records: fetched, batches, stats } = await fetchAllRecords({
          brokers: spool.brokers,
          topic,
          endOffsets,
          timeoutMs: Math.max(5000, deadline - Date.now()),
        })
        verifyFetched({ records, placements, fetched, counts })

        const afterFetch = snapshotCounters()
        if (name !== 'none') {
          // Kafka (compression.type=producer, the default) hands out the
          // producer's batches, so the consumer must decompress them.
          assert.ok(
            afterFetch[name].decompress > afterProduce[name].decompress,
            `fetched batches should be ${name}-compressed (the broker returned no ${name} batches)`
          )
        }
        const batchCount = [...batches.values()].reduce((n, b) => n + b.length, 0)
        t.diagnostic(
          `${name}: counts=${JSON.stringify(counts)} sends=${produced.sends} fetched batches=${batchCount} ` +
            `fetch requests=${stats.fetchRequests} broker Fetch versions=${JSON.stringify(stats.fetchVersionRange)} ` +
            `retriable errors=${stats.retriableErrors.length}`
        )
      })
    })
  }
})
