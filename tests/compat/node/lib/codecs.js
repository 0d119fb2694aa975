'use strict'

// Compression codecs for kafkajs 2.2.4.
//
// kafkajs only ships gzip. The other codecs are registered through its public
// `CompressionCodecs` table. Every codec factory follows kafkajs's interface:
//
//   () => ({ compress(encoder) -> Promise<Buffer>, decompress(buffer) -> Promise<Buffer> })
//
// `compress` receives a kafkajs Encoder (the raw bytes are `encoder.buffer`);
// `decompress` receives a Buffer and must return a Buffer.
//
// Only pure-JS / WASM implementations are used so that `npm ci` needs nothing
// but the npm registry (no node-gyp, no prebuilt-binary downloads):
//   snappy: kafkajs-snappy (snappyjs). Compresses raw snappy blocks (what
//           kafkajs users send in practice); decompresses raw and xerial-framed.
//   lz4:    lz4js. Kafka uses the LZ4 *frame* format; lz4js reads/writes frames
//           with the standard header checksum, as Kafka >= 0.10 expects.
//   zstd:   @bokuweb/zstd-wasm for compression (single frame with content size),
//           fzstd (pure JS streaming decoder) for decompression so that frames
//           without a content-size field (as written by streaming encoders,
//           e.g. a broker that re-compresses) decode as well.
//
// Every codec is wrapped with call counters so that the tests can assert that
// the codec really was used on the produce and on the fetch path.

const { CompressionTypes, CompressionCodecs } = require('kafkajs')
const kafkajsGzip = require('kafkajs/src/protocol/message/compression/gzip')
const SnappyCodec = require('kafkajs-snappy')
const lz4js = require('lz4js')
const zstdWasm = require('@bokuweb/zstd-wasm')
const fzstd = require('fzstd')

const toBuffer = data => {
  if (Buffer.isBuffer(data)) return data
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (Array.isArray(data)) return Buffer.from(data)
  throw new TypeError(`codec returned unsupported type ${Object.prototype.toString.call(data)}`)
}

const inputBytes = encoderOrBuffer =>
  Buffer.isBuffer(encoderOrBuffer) ? encoderOrBuffer : encoderOrBuffer.buffer

// ---------------------------------------------------------------- snappy
const snappyImpl = SnappyCodec()
const snappy = {
  async compress(encoder) {
    return toBuffer(await snappyImpl.compress({ buffer: inputBytes(encoder) }))
  },
  async decompress(buffer) {
    return toBuffer(await snappyImpl.decompress(buffer))
  },
}

// ---------------------------------------------------------------- lz4
// lz4js's own frame decoder skips a block checksum *before* the block data
// (the spec puts it after), so frames with block checksums (FLG bit 4) fail.
// Parse the frame here (spec: lz4_Frame_format.md) and only use lz4js for the
// blocks. Handles linked and independent blocks, block and content checksums
// (not verified), content size, dictionary id, uncompressed blocks,
// concatenated frames and skippable frames.
const LZ4_MAGIC = 0x184d2204
const LZ4_BLOCK_MAX = { 4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20 }

function lz4FrameBlocks(src) {
  const frames = []
  let i = 0
  while (i < src.length) {
    if (i + 4 > src.length) throw new Error('lz4: truncated frame magic')
    const magic = src.readUInt32LE(i)
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      i += 8 + src.readUInt32LE(i + 4) // skippable frame
      continue
    }
    if (magic !== LZ4_MAGIC) throw new Error(`lz4: bad frame magic 0x${magic.toString(16)}`)
    const flg = src[i + 4]
    const bd = src[i + 5]
    if (flg >> 6 !== 1) throw new Error(`lz4: unsupported frame version ${flg >> 6}`)
    const blockChecksum = (flg & 0x10) !== 0
    const contentSize = (flg & 0x08) !== 0
    const contentChecksum = (flg & 0x04) !== 0
    const dictId = (flg & 0x01) !== 0
    const maxBlock = LZ4_BLOCK_MAX[(bd >> 4) & 0x7]
    if (!maxBlock) throw new Error(`lz4: bad block max size in BD 0x${bd.toString(16)}`)
    i += 6 + (contentSize ? 8 : 0) + (dictId ? 4 : 0) + 1 // + header checksum
    const blocks = []
    for (;;) {
      if (i + 4 > src.length) throw new Error('lz4: truncated block header')
      const word = src.readUInt32LE(i)
      i += 4
      if (word === 0) break // end mark
      const length = word & 0x7fffffff
      if (i + length > src.length) throw new Error('lz4: truncated block')
      blocks.push({ start: i, length, uncompressed: (word & 0x80000000) !== 0, maxBlock })
      i += length + (blockChecksum ? 4 : 0)
    }
    i += contentChecksum ? 4 : 0
    frames.push(blocks)
  }
  return frames
}

function lz4Decompress(src) {
  const out = []
  for (const blocks of lz4FrameBlocks(src)) {
    // one destination per frame, so linked blocks can reference earlier output
    let bound = 0
    for (const b of blocks) bound += b.uncompressed ? b.length : b.maxBlock
    const dst = Buffer.alloc(bound)
    let d = 0
    for (const b of blocks) {
      if (b.uncompressed) {
        src.copy(dst, d, b.start, b.start + b.length)
        d += b.length
      } else {
        d = lz4js.decompressBlock(src, dst, b.start, b.length, d)
      }
    }
    out.push(dst.subarray(0, d))
  }
  return out.length === 1 ? out[0] : Buffer.concat(out)
}

const lz4 = {
  async compress(encoder) {
    return toBuffer(lz4js.compress(inputBytes(encoder)))
  },
  async decompress(buffer) {
    return lz4Decompress(buffer)
  },
}

// ---------------------------------------------------------------- zstd
// zstd-wasm must be initialised exactly once per process (a second init()
// re-instantiates the module and corrupts later output): always go through this.
let zstdReady = null
const zstdInit = () => {
  if (!zstdReady) zstdReady = zstdWasm.init()
  return zstdReady
}
const zstd = {
  async compress(encoder) {
    await zstdInit()
    return toBuffer(zstdWasm.compress(inputBytes(encoder), 3))
  },
  async decompress(buffer) {
    return toBuffer(fzstd.decompress(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length)))
  },
}

// ---------------------------------------------------------------- gzip
const gzip = {
  async compress(encoder) {
    return toBuffer(await kafkajsGzip.compress({ buffer: inputBytes(encoder) }))
  },
  async decompress(buffer) {
    return toBuffer(await kafkajsGzip.decompress(buffer))
  },
}

const implementations = {
  gzip: { type: CompressionTypes.GZIP, impl: gzip },
  snappy: { type: CompressionTypes.Snappy, impl: snappy },
  lz4: { type: CompressionTypes.LZ4, impl: lz4 },
  zstd: { type: CompressionTypes.ZSTD, impl: zstd },
}

// Call counters: { gzip: { compress: n, decompress: n }, ... }
const counters = {}
for (const name of Object.keys(implementations)) counters[name] = { compress: 0, decompress: 0 }

const counted = name => {
  const { impl } = implementations[name]
  return {
    async compress(encoder) {
      counters[name].compress++
      return impl.compress(encoder)
    },
    async decompress(buffer) {
      counters[name].decompress++
      return impl.decompress(buffer)
    },
  }
}

let registered = false
/** Register all codecs (idempotent). */
const registerCodecs = () => {
  if (registered) return
  for (const [name, { type }] of Object.entries(implementations)) {
    const codec = counted(name)
    CompressionCodecs[type] = () => codec
  }
  registered = true
}

/** The compressions exercised by the suite, with their kafkajs type. */
const COMPRESSIONS = [
  { name: 'none', type: CompressionTypes.None },
  { name: 'gzip', type: CompressionTypes.GZIP },
  { name: 'snappy', type: CompressionTypes.Snappy },
  { name: 'lz4', type: CompressionTypes.LZ4 },
  { name: 'zstd', type: CompressionTypes.ZSTD },
]

const snapshotCounters = () => JSON.parse(JSON.stringify(counters))

module.exports = {
  registerCodecs,
  COMPRESSIONS,
  counters,
  snapshotCounters,
  zstdInit,
  // raw (uncounted) implementations, for unit tests
  implementations: Object.fromEntries(
    Object.entries(implementations).map(([k, v]) => [k, v.impl])
  ),
}
