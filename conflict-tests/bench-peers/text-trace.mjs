// The text-trace benchmark's peers (docs/benchmarks.md): replays an editing trace through one
// stock `yjs` client connected to a peer server, and times until a second stock client holds
// the trace's end content. Same body layout as Syncline's (XmlFragment "prosemirror" >
// paragraph > XmlText) and the same batching (one Yjs transaction per `batch` edits).
//
// usage: node text-trace.mjs <hocuspocus|y-websocket> <trace.json.gz> <batch>
// prints one JSON line: {"peer", "ms", "updates", "chars"}
import fs from 'node:fs'
import http from 'node:http'
import zlib from 'node:zlib'
import WebSocket, { WebSocketServer } from 'ws'
import * as Y from 'yjs'

const [, , peer, tracePath, batchArg] = process.argv
const batch = Number(batchArg || 100)
const trace = JSON.parse(zlib.gunzipSync(fs.readFileSync(tracePath)))
const patches = trace.txns.flatMap((t) => t.patches)

async function startYWebsocket () {
  const { setupWSConnection } = await import('@y/websocket-server/utils')
  const server = http.createServer()
  const wss = new WebSocketServer({ server })
  wss.on('connection', (conn, req) => setupWSConnection(conn, req))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `ws://127.0.0.1:${server.address().port}`,
    stop: async () => { wss.close(); server.close() }
  }
}

async function startHocuspocus () {
  const { Server } = await import('@hocuspocus/server')
  const server = new Server({ port: 0, address: '127.0.0.1', quiet: true, stopOnSignals: false })
  await server.listen()
  return { url: `ws://127.0.0.1:${server.address.port}`, stop: () => server.destroy() }
}

async function connect (url, doc) {
  if (peer === 'y-websocket') {
    const { WebsocketProvider } = await import('y-websocket')
    const provider = new WebsocketProvider(url, 'trace', doc, { WebSocketPolyfill: WebSocket })
    await new Promise((resolve) => provider.on('sync', (synced) => synced && resolve()))
    return () => provider.destroy()
  }
  const { HocuspocusProvider } = await import('@hocuspocus/provider')
  let provider
  await new Promise((resolve) => {
    provider = new HocuspocusProvider({ url, name: 'trace', document: doc, WebSocketPolyfill: WebSocket, onSynced: resolve })
  })
  return () => provider.destroy()
}

const server = peer === 'y-websocket' ? await startYWebsocket() : await startHocuspocus()
const writerDoc = new Y.Doc()
const readerDoc = new Y.Doc()
const closeWriter = await connect(server.url, writerDoc)
const closeReader = await connect(server.url, readerDoc)

// The body's paragraph, created by the writer and synced before the clock starts.
const body = writerDoc.getXmlFragment('prosemirror')
const paragraph = new Y.XmlElement('paragraph')
const text = new Y.XmlText()
paragraph.insert(0, [text])
writerDoc.transact(() => body.insert(0, [paragraph]))
const readerBody = readerDoc.getXmlFragment('prosemirror')
await new Promise((resolve) => {
  const check = () => { if (readerBody.length === 1) { readerDoc.off('update', check); resolve() } }
  readerDoc.on('update', check)
  check()
})
const readerText = readerBody.get(0).get(0)

const expected = trace.endContent
const done = new Promise((resolve) => {
  const check = () => {
    if (readerText.length === expected.length && readerText.toString() === expected) {
      readerDoc.off('update', check)
      resolve()
    }
  }
  readerDoc.on('update', check)
})
const started = process.hrtime.bigint()
let updates = 0
for (let i = 0; i < patches.length; i += batch) {
  writerDoc.transact(() => {
    for (const [pos, del, ins] of patches.slice(i, i + batch)) {
      if (del > 0) text.delete(pos, del)
      if (ins) text.insert(pos, ins)
    }
  })
  updates++
  // Let the provider send, as an editor's event loop would between flushes.
  await new Promise((resolve) => setImmediate(resolve))
}
await done
const ms = Number(process.hrtime.bigint() - started) / 1e6
console.log(JSON.stringify({ peer, ms, updates, chars: readerText.length }))
closeWriter()
closeReader()
await server.stop()
process.exit(0)
