'use strict'

// Local checks of the codec adapters (no broker needed): raw roundtrips, a
// kafkajs RecordBatch encode -> decode through each registered codec, and
// interop with formats other implementations produce.

const { test } = require('node:test')
const assert = require('assert/strict')
const crypto = require('crypto')
const snappyjs = require('snappyjs')
const zstdWasm = require('@bokuweb/zstd-wasm')

const { registerCodecs, implementations, COMPRESSIONS, counters, zstdInit } = require('./lib/codecs')
const Encoder = require('kafkajs/src/protocol/encoder')
const Decoder = require('kafkajs/src/protocol/decoder')
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0')
const Record = require('kafkajs/src/protocol/recordBatch/record/v0')
const decodeRecordBatch = require('kafkajs/src/protocol/recordBatch/v0/decoder')

registerCodecs()

const samples = () => [
  Buffer.alloc(0),
  Buffer.from('x'),
  Buffer.from('hello kafka '.repeat(1000)),
  crypto.randomBytes(64 * 1024), // incompressible
  Buffer.concat([crypto.randomBytes(1000), Buffer.alloc(3 * 1024 * 1024, 7), crypto.randomBytes(1000)]),
  crypto.randomBytes(5 * 1024 * 1024), // > one lz4 4 MiB block
]

for (const [name, codec] of Object.entries(implementations)) {
  test(`${name} codec roundtrips raw buffers`, { timeout: 60000 }, async () => {
    for (const input of samples()) {
      if (input.length === 0 && name === 'zstd') continue // zstd-wasm cannot malloc(0)
      const compressed = await codec.compress({ buffer: input })
      assert.ok(Buffer.isBuffer(compressed), 'compress must return a Buffer')
      const output = await codec.decompress(compressed)
      assert.ok(Buffer.isBuffer(output), 'decompress must return a Buffer')
      assert.ok(output.equals(input), `${name}: roundtrip of ${input.length} bytes`)
    }
  })
}

test('snappy codec decodes xerial-framed input (what the Java client sends)', async () => {
  const input = Buffer.from('xerial framed snappy '.repeat(5000))
  const chunks = [input.subarray(0, 40000), input.subarray(40000)]
  const header = Buffer.from([130, 83, 78, 65, 80, 80, 89, 0, 0, 0, 0, 1, 0, 0, 0, 1])
  const parts = [header]
  for (const chunk of chunks) {
    const c = snappyjs.compress(chunk)
    const len = Buffer.alloc(4)
    len.writeUInt32BE(c.length)
    parts.push(len, Buffer.from(c))
  }
  const out = await implementations.snappy.decompress(Buffer.concat(parts))
  assert.ok(out.equals(input))
})

test('zstd codec: fzstd decodes zstd-wasm output and vice versa', async () => {
  await zstdInit()
  const input = Buffer.from('zstd interop '.repeat(10000))
  const c = await implementations.zstd.compress({ buffer: input })
  assert.ok(Buffer.from(zstdWasm.decompress(c)).equals(input))
  const c2 = Buffer.from(zstdWasm.compress(input, 19))
  assert.ok((await implementations.zstd.decompress(c2)).equals(input))
})

test('lz4 codec decodes frames with block checksums, content size and concatenated frames', async () => {
  const xxh32 = require('lz4js/xxh32')
  const input = Buffer.from('lz4 frame flags '.repeat(20000))
  const plain = await implementations.lz4.compress({ buffer: input })
  // rebuild lz4js's frame with FLG: block checksum + content size
  const flg = plain[4] | 0x10 | 0x08
  const descriptor = Buffer.alloc(10)
  descriptor[0] = flg
  descriptor[1] = plain[5]
  descriptor.writeBigUInt64LE(BigInt(input.length), 2)
  const hc = (xxh32.hash(0, descriptor, 0, descriptor.length) >> 8) & 0xff
  const parts = [plain.subarray(0, 4), descriptor, Buffer.from([hc])]
  let i = 7
  for (;;) {
    const word = plain.readUInt32LE(i)
    if (word === 0) break
    const len = word & 0x7fffffff
    parts.push(plain.subarray(i, i + 4 + len), Buffer.from([1, 2, 3, 4])) // dummy block checksum
    i += 4 + len
  }
  parts.push(Buffer.alloc(4))
  const framed = Buffer.concat(parts)
  assert.ok((await implementations.lz4.decompress(framed)).equals(input))
  const twice = Buffer.concat([framed, plain])
  assert.ok((await implementations.lz4.decompress(twice)).equals(Buffer.concat([input, input])))
})

test('lz4 codec writes a standard LZ4 frame (magic, version 01, valid header checksum)', async () => {
  const c = await implementations.lz4.compress({ buffer: Buffer.from('frame check '.repeat(100)) })
  assert.equal(c.readUInt32LE(0), 0x184d2204, 'LZ4 frame magic')
  assert.equal(c[4] >> 6, 1, 'frame version 01')
  const xxh32 = require('lz4js/xxh32')
  assert.equal(c[6], (xxh32.hash(0, c, 4, 2) >> 8) & 0xff, 'header checksum over FLG and BD')
})

for (const { name, type } of COMPRESSIONS) {
  test(`kafkajs RecordBatch encode/decode with ${name}`, async () => {
    const before = name === 'none' ? null : { ...counters[name] }
    const records = []
    for (let i = 0; i < 500; i++) {
      records.push(
        Record({
          key: Buffer.from(`k${i}`),
          value: Buffer.from(`value ${i} `.repeat(i % 20)),
          headers: { a: Buffer.from(`a${i}`), b: Buffer.from(`b${i}`) },
          offsetDelta: i,
          timestampDelta: i,
        })
      )
    }
    const batch = await RecordBatch({
      compression: type,
      records,
      firstTimestamp: 1700000000000,
      maxTimestamp: 1700000000499,
      lastOffsetDelta: records.length - 1,
    })
    const buffer = new Encoder().writeEncoder(batch).buffer
    const decoded = await decodeRecordBatch(new Decoder(buffer))
    assert.equal(decoded.records.length, 500)
    decoded.records.forEach((r, i) => {
      assert.equal(r.offset, String(i))
      assert.equal(r.key.toString(), `k${i}`)
      assert.equal(r.value.toString(), `value ${i} `.repeat(i % 20))
      assert.equal(r.headers.a.toString(), `a${i}`)
      assert.equal(r.headers.b.toString(), `b${i}`)
      assert.equal(r.timestamp, String(1700000000000 + i))
    })
    if (before) {
      assert.equal(counters[name].compress, before.compress + 1)
      assert.equal(counters[name].decompress, before.decompress + 1)
      // attributes: low 3 bits carry the codec id
      assert.equal(buffer.readInt16BE(8 + 4 + 4 + 1 + 4) & 0x07, type)
    }
  })
}
