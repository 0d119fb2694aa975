'use strict'

// A minimal, group-less consumer built on kafkajs's own protocol layer.
//
// Why: kafkajs's public Consumer always joins a consumer group
// (FindCoordinator / JoinGroup / SyncGroup / OffsetFetch / Heartbeat), and spool
// does not implement consumer groups yet. Its public Admin has no Fetch either.
// So we build a kafkajs `Cluster` ourselves (the same class kafka.producer() /
// kafka.consumer() use internally, constructed with the same arguments that
// kafkajs/src/index.js passes) and issue Fetch requests directly through
// `broker.fetch(...)` on the partition leader. This still exercises kafkajs's
// real wire code end to end: ApiVersions negotiation (kafkajs picks the highest
// Fetch version both sides support, up to v11), Metadata, Fetch request
// encoding, and the Fetch response / RecordBatch / codec decoding that the
// kafkajs consumer uses (`protocol/requests/fetch/v*/response.js`).
//
// Robustness:
//  * offsets are tracked per partition; records below the requested offset
//    (a batch may start before it) are skipped, a gap or a duplicate fails;
//    control records (transaction markers) occupy an offset each: they are
//    returned separately (`controls`), never as data records;
//  * retriable errors (leader / metadata not ready, connection closed,
//    request timeout) refresh metadata and try again, within the bounds;
//  * every loop is bounded by an iteration count AND a wall-clock deadline,
//    and a partition that makes no progress for `maxStalls` fetches in a row
//    fails with diagnostics instead of spinning.

const Cluster = require('kafkajs/src/cluster')
const { createLogger, LEVELS } = require('kafkajs/src/loggers')
const LoggerConsole = require('kafkajs/src/loggers/console')
const defaultSocketFactory = require('kafkajs/src/network/socketFactory')
const ISOLATION_LEVEL = require('kafkajs/src/protocol/isolationLevel')
const apiKeys = require('kafkajs/src/protocol/requests/apiKeys')

const logLevelFromEnv = () => {
  const name = (process.env.KAFKAJS_LOG_LEVEL || 'ERROR').toUpperCase()
  return LEVELS[name] == null ? LEVELS.ERROR : LEVELS[name]
}

/**
 * Create a connected kafkajs Cluster for low-level requests.
 */
async function createCluster({ brokers, clientId = 'spool-compat-fetcher', requestTimeout = 30000 }) {
  const cluster = new Cluster({
    logger: createLogger({ level: logLevelFromEnv(), logCreator: LoggerConsole }),
    socketFactory: defaultSocketFactory(),
    brokers,
    clientId,
    connectionTimeout: 3000,
    requestTimeout,
    enforceRequestTimeout: true,
    metadataMaxAge: 300000,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
    allowAutoTopicCreation: false,
    maxInFlightRequests: null,
    isolationLevel: ISOLATION_LEVEL.READ_UNCOMMITTED,
  })
  await cluster.connect()
  return cluster
}

const RETRIABLE_NAMES = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSTopicMetadataNotLoaded',
  'KafkaJSLockTimeout',
])

const isRetriable = e =>
  RETRIABLE_NAMES.has(e.name) || (e.name === 'KafkaJSProtocolError' && e.retriable === true)

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/**
 * Fetch every record of `topic` from offset 0 up to (excluding) endOffsets[p]
 * for each partition p.
 *
 * @param {object} opts
 * @param {string[]} opts.brokers
 * @param {string} opts.topic
 * @param {Record<number, number>} opts.endOffsets partition -> exclusive end offset
 * @param {number} [opts.timeoutMs=60000] wall-clock bound for the whole read
 * @param {number} [opts.maxIterations=20000] bound on fetch rounds
 * @param {number} [opts.maxStalls=200] fetch rounds in a row without progress before failing
 * @param {number} [opts.partitionMaxBytes=65536] small, so several fetch rounds are needed
 * @param {number} [opts.isolationLevel] ISOLATION_LEVEL.READ_UNCOMMITTED (default) or READ_COMMITTED;
 *   with READ_COMMITTED the broker returns records up to the last stable offset. Either way
 *   this helper does NOT filter aborted records (that is the client's job): it returns every
 *   data record and reports the broker's aborted-transaction lists separately.
 * @returns {Promise<{ records: Map<number, object[]>, batches: Map<number, object[]>, controls: Map<number, object[]>,
 *   abortedTransactions: Map<number, object[]>, partitionHeaders: Map<number, object>, stats: object }>}
 *   records: partition -> decoded kafkajs messages ({offset, key, value, headers, timestamp, batchContext, ...}), data records only
 *   batches: partition -> distinct batch contexts (firstOffset, lastOffsetDelta, producerId, producerEpoch, firstSequence, ...)
 *   controls: partition -> control records (transaction markers) { offset, type (0 abort, 1 commit), producerId, producerEpoch }
 *   abortedTransactions: partition -> distinct { producerId, firstOffset } from the Fetch responses' aborted_transactions
 *   partitionHeaders: partition -> the last Fetch response's partition header (highWatermark, lastStableOffset, ...)
 */
async function fetchAllRecords({
  brokers,
  topic,
  endOffsets,
  timeoutMs = 60000,
  maxIterations = 20000,
  maxStalls = 200,
  partitionMaxBytes = 64 * 1024,
  isolationLevel = ISOLATION_LEVEL.READ_UNCOMMITTED,
}) {
  const deadline = Date.now() + timeoutMs
  const partitions = Object.keys(endOffsets).map(Number)
  const next = new Map(partitions.map(p => [p, 0]))
  const records = new Map(partitions.map(p => [p, []]))
  const batches = new Map(partitions.map(p => [p, []]))
  const controls = new Map(partitions.map(p => [p, []]))
  const abortedTransactions = new Map(partitions.map(p => [p, []]))
  const seenAborted = new Set()
  const seenBatchContexts = new Set()
  const stalls = new Map(partitions.map(p => [p, 0]))
  const lastPartitionInfo = new Map()
  const stats = { fetchRequests: 0, retriableErrors: [], fetchVersionRange: null }

  const cluster = await createCluster({ brokers })
  try {
    await cluster.addTargetTopic(topic)

    for (let iteration = 0; ; iteration++) {
      const pending = partitions.filter(p => next.get(p) < endOffsets[p])
      if (pending.length === 0) break

      if (iteration >= maxIterations || Date.now() > deadline) {
        throw new Error(
          `fetch loop did not finish (iteration ${iteration}, ${Date.now() > deadline ? 'deadline passed' : 'iteration bound'}); ` +
            `progress: ${JSON.stringify(progress(partitions, next, endOffsets))}; ` +
            `last partition headers: ${JSON.stringify(Object.fromEntries(lastPartitionInfo))}; ` +
            `retriable errors: ${JSON.stringify(stats.retriableErrors.slice(-5))}`
        )
      }

      try {
        const leaders = cluster.findLeaderForPartitions(topic, pending)
        const missing = pending.filter(p => !Object.values(leaders).some(ps => ps.includes(p)))
        if (missing.length > 0) {
          const e = new Error(`no leader in metadata for partitions ${missing}`)
          e.name = 'KafkaJSMetadataNotLoaded'
          throw e
        }

        for (const [nodeId, leaderPartitions] of Object.entries(leaders)) {
          const broker = await cluster.findBroker({ nodeId })
          if (!stats.fetchVersionRange && broker.versions) {
            stats.fetchVersionRange = broker.versions[apiKeys.Fetch] || null
          }
          stats.fetchRequests++
          const response = await broker.fetch({
            replicaId: -1,
            // Default READ_UNCOMMITTED: for non-transactional data the test then
            // depends on the high watermark only, not on the broker's
            // last-stable-offset logic.
            isolationLevel,
            maxWaitTime: 200,
            minBytes: 1,
            maxBytes: 8 * 1024 * 1024,
            topics: [
              {
                topic,
                partitions: leaderPartitions.map(partition => ({
                  partition,
                  fetchOffset: String(next.get(partition)),
                  maxBytes: partitionMaxBytes,
                })),
              },
            ],
          })

          const progressed = new Set()
          for (const topicResponse of response.responses) {
            if (topicResponse.topicName !== topic) {
              throw new Error(`Fetch response for unexpected topic ${topicResponse.topicName}`)
            }
            for (const partitionData of topicResponse.partitions) {
              const p = partitionData.partition
              if (!next.has(p)) throw new Error(`Fetch response for unexpected partition ${p}`)
              lastPartitionInfo.set(p, {
                errorCode: partitionData.errorCode,
                highWatermark: partitionData.highWatermark,
                lastStableOffset: partitionData.lastStableOffset,
                messages: partitionData.messages.length,
                fetchOffset: next.get(p),
              })
              for (const t of partitionData.abortedTransactions || []) {
                const id = `${p}:${t.producerId}:${t.firstOffset}`
                if (!seenAborted.has(id)) {
                  seenAborted.add(id)
                  abortedTransactions.get(p).push({ producerId: String(t.producerId), firstOffset: Number(t.firstOffset) })
                }
              }
              for (const message of partitionData.messages) {
                const offset = Number(message.offset)
                const expected = next.get(p)
                if (offset < expected) continue // batch started before our fetch offset
                if (offset !== expected) {
                  throw new Error(
                    `partition ${p}: expected offset ${expected} but Fetch returned ${offset} (gap)`
                  )
                }
                if (offset >= endOffsets[p]) break
                next.set(p, expected + 1)
                progressed.add(p)
                if (message.isControlRecord) {
                  // transaction marker: key = version int16, type int16 (0 abort, 1 commit)
                  const key = message.key
                  controls.get(p).push({
                    offset,
                    type: key && key.length >= 4 ? key.readInt16BE(2) : null,
                    producerId: message.batchContext && String(message.batchContext.producerId),
                    producerEpoch: message.batchContext && message.batchContext.producerEpoch,
                  })
                  continue
                }
                records.get(p).push(message)
                if (message.batchContext && !seenBatchContexts.has(message.batchContext)) {
                  seenBatchContexts.add(message.batchContext)
                  batches.get(p).push(message.batchContext)
                }
              }
            }
          }
          for (const p of leaderPartitions) {
            if (progressed.has(p)) {
              stalls.set(p, 0)
            } else if (next.get(p) < endOffsets[p]) {
              stalls.set(p, stalls.get(p) + 1)
              if (stalls.get(p) > maxStalls) {
                throw new Error(
                  `partition ${p}: no progress after ${maxStalls} fetches at offset ${next.get(p)} ` +
                    `(expected end ${endOffsets[p]}); last partition header: ${JSON.stringify(lastPartitionInfo.get(p))}`
                )
              }
            }
          }
        }
      } catch (e) {
        if (!isRetriable(e)) throw e
        stats.retriableErrors.push(`${e.name}: ${e.message}`)
        if (stats.retriableErrors.length > 50) {
          throw new Error(`too many retriable errors while fetching; last: ${e.name}: ${e.message}`)
        }
        await sleep(Math.min(100 * stats.retriableErrors.length, 1000))
        await cluster.refreshMetadata().catch(() => {})
      }
    }
  } finally {
    await cluster.disconnect().catch(() => {})
  }

  return { records, batches, controls, abortedTransactions, partitionHeaders: lastPartitionInfo, stats }
}

const progress = (partitions, next, endOffsets) =>
  Object.fromEntries(partitions.map(p => [p, `${next.get(p)}/${endOffsets[p]}`]))

module.exports = { fetchAllRecords, createCluster }
