'use strict'

// Glue for the node:test files: one spool broker per test file, one kafkajs
// client, broker log tail attached to every failure.

const { Kafka, logLevel } = require('kafkajs')
const { startSpool } = require('./spool')
const { registerCodecs } = require('./codecs')

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const kafkajsLogLevel = () => {
  const name = (process.env.KAFKAJS_LOG_LEVEL || 'ERROR').toUpperCase()
  return logLevel[name] === undefined ? logLevel.ERROR : logLevel[name]
}

/** A kafkajs client for `spool`; `overrides` are merged into the Kafka config (e.g. logCreator). */
function createKafka(spool, clientId, overrides = {}) {
  registerCodecs()
  return new Kafka({
    clientId,
    brokers: spool.brokers,
    connectionTimeout: 3000,
    requestTimeout: 30000,
    logLevel: kafkajsLogLevel(),
    // bounded retries everywhere (the idempotent producer overrides this)
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
    ...overrides,
  })
}

/** Run fn; on failure, print the broker log tail and rethrow. */
async function withBrokerLogs(_t, spool, fn) {
  try {
    return await fn()
  } catch (e) {
    const tail = spool ? spool.logTail(60) : '<no broker>'
    // (t.diagnostic would escape the newlines; stderr is shown as-is)
    console.error(`--- spool log (${spool && spool.logFile}) tail ---\n${tail}\n--- end of spool log ---`)
    if (spool) spool.failed = true
    throw e
  }
}

const uniqueTopic = prefix => `${prefix}-${process.pid}-${Date.now().toString(36)}`

/**
 * Start the broker for a test file; returns the spool handle.
 * @param {{settings?: Record<string, string|number|boolean>}} [opts] e.g. { settings: { num_partitions: 6 } }
 */
async function startBroker(opts = {}) {
  return startSpool(opts)
}

/**
 * Stop the broker; asserts the SIGTERM contract (clean exit, code 0).
 * The temp dir is removed only if nothing failed.
 */
async function stopBroker(spool) {
  if (!spool) return null
  const result = await spool.stop()
  if (!result.graceful) {
    throw new Error(
      `spool did not shut down gracefully on SIGTERM: ${JSON.stringify(result)}\n` +
        `--- ${spool.logFile} (tail) ---\n${spool.logTail(60)}`
    )
  }
  if (!spool.failed && !process.env.SPOOL_KEEP_TMP) {
    require('fs').rmSync(spool.tmpDir, { recursive: true, force: true })
  }
  return result
}

/**
 * Produce `messages` (acks=all) to a new topic, then read them all back with a new consumer
 * group (bounded by 60 s); returns what was read, as `key=value` strings.
 */
async function produceAndReadBack(kafka, label, messages) {
  const topic = uniqueTopic(label)
  const producer = kafka.producer()
  await producer.connect()
  await producer.send({ topic, acks: -1, messages })
  await producer.disconnect()
  const consumer = kafka.consumer({ groupId: uniqueTopic(`${label}-g`) })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const got = []
  let done
  const all = new Promise(resolve => { done = resolve })
  await consumer.run({
    eachMessage: async ({ message }) => {
      got.push(`${message.key}=${message.value}`)
      if (got.length === messages.length) done()
    },
  })
  let timeout
  const timer = new Promise((_, reject) => {
    timeout = setTimeout(() => reject(new Error(`read ${got.length} of ${messages.length}`)), 60000)
  })
  try {
    await Promise.race([all, timer])
  } finally {
    clearTimeout(timeout)
    await consumer.disconnect()
  }
  return got
}

module.exports = { createKafka, withBrokerLogs, uniqueTopic, startBroker, stopBroker, produceAndReadBack }
