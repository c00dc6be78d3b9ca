// A stock Yjs client (yjs + y-websocket's WebsocketProvider, as a browser editor uses them)
// driven line by line over stdin/stdout, for conflict-tests/tests/yjs_interop.rs.
//
//   node yjs-client.mjs --url ws://127.0.0.1:PORT/yjs --doc DOC_ID --token JWT
//
// The body is y-prosemirror's layout: XmlFragment "prosemirror" > XmlElement "paragraph" >
// XmlText. stdin: one JSON command per line, each with an "id"; stdout: one JSON object per
// line, either {"id", ...} answering a command or {"event", ...} reporting what happened.
//
// Commands:
//   {"id":1,"cmd":"wait_synced","timeout_ms":10000}      -> {"id":1,"ok":true}
//   {"id":2,"cmd":"push_paragraph","text":"Hi"}           -> {"id":2,"ok":true}
//   {"id":3,"cmd":"insert","paragraph":0,"at":2,"text":"!"} (UTF-16 offsets)
//   {"id":4,"cmd":"delete","paragraph":0,"at":0,"len":1}
//   {"id":10,"cmd":"suggest_insert","paragraph":0,"at":2,"text":"!","author":"<user id>"}
//       (inserted with the suggestion mark y-prosemirror stores: {"insertion":{author,time}})
//   {"id":5,"cmd":"read"}                                  -> {"id":5,"paragraphs":[...],"text":"..."}
//   {"id":6,"cmd":"wait_text","text":"...","timeout_ms":10000} -> {"id":6,"ok":bool,"text":"..."}
//   {"id":7,"cmd":"awareness","state":{...}}               (this client's presence)
//   {"id":9,"cmd":"awareness_states"}                      -> {"id":9,"states":{"<client id>":state}}
//   {"id":8,"cmd":"close"}                                 -> {"id":8,"ok":true}, then exit
// Events: status, synced, permission_denied {reason}, closed {code, reason} (a close the
// provider will not retry: codes 4400-4499), connection_close {code, reason}, update {local}.

import * as readline from 'node:readline'
import * as Y from 'yjs'
import { WebsocketProvider, messageAuth } from 'y-websocket'
import * as decoding from 'lib0/decoding'
import WebSocket from 'ws'

const BODY = 'prosemirror'

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith('--')) pairs.push([arg.slice(2), all[i + 1]])
    return pairs
  }, [])
)
for (const required of ['url', 'doc', 'token']) {
  if (args[required] === undefined) {
    process.stderr.write(`usage: node yjs-client.mjs --url WS_URL --doc DOC_ID --token JWT (missing --${required})\n`)
    process.exit(2)
  }
}

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

const doc = new Y.Doc()
const body = doc.getXmlFragment(BODY)
const provider = new WebsocketProvider(args.url, args.doc, doc, {
  connect: false,
  params: { token: args.token },
  WebSocketPolyfill: WebSocket,
  // Two clients in one process must not sync through a BroadcastChannel behind the server.
  disableBc: true,
  maxBackoffTime: 500
})

// y-websocket only logs permission-denied messages (console.warn); report them instead.
provider.messageHandlers[messageAuth] = (_encoder, decoder) => {
  const denied = decoding.readVarUint(decoder) === 0
  const reason = denied ? decoding.readVarString(decoder) : null
  out({ event: denied ? 'permission_denied' : 'permission_granted', reason })
}
provider.on('status', ({ status }) => out({ event: 'status', status }))
provider.on('sync', (synced) => { if (synced) out({ event: 'synced' }) })
provider.on('closed', ({ code, reason }) => out({ event: 'closed', code, reason }))
provider.on('connection-close', (event) => {
  if (event) out({ event: 'connection_close', code: event.code, reason: event.reason })
})
doc.on('update', (_update, origin) => out({ event: 'update', local: origin !== provider }))
provider.connect()

const paragraphs = () =>
  body.toArray().map((block) =>
    block instanceof Y.XmlElement
      ? block.toArray().map((child) => (child instanceof Y.XmlText ? child.toString() : '')).join('')
      : ''
  )
const text = () => paragraphs().join('\n')

const textOf = (index) => {
  const block = body.get(index)
  if (!(block instanceof Y.XmlElement)) throw new Error(`no paragraph ${index}`)
  const child = block.get(0)
  if (!(child instanceof Y.XmlText)) throw new Error(`paragraph ${index} has no text`)
  return child
}

const waitFor = (check, timeoutMs, subscribe, unsubscribe) =>
  new Promise((resolve) => {
    if (check()) return resolve(true)
    const timer = setTimeout(() => { unsubscribe(listener); resolve(false) }, timeoutMs)
    const listener = () => {
      if (check()) { clearTimeout(timer); unsubscribe(listener); resolve(true) }
    }
    subscribe(listener)
  })

const commands = {
  wait_synced: async ({ timeout_ms: t = 10000 }) => ({
    ok: await waitFor(() => provider.synced, t, (l) => provider.on('sync', l), (l) => provider.off('sync', l))
  }),
  push_paragraph: ({ text: s }) => {
    doc.transact(() => {
      const p = new Y.XmlElement('paragraph')
      p.insert(0, [new Y.XmlText()])
      body.push([p])
      textOf(body.length - 1).insert(0, s)
    })
    return { ok: true }
  },
  insert: ({ paragraph, at, text: s }) => { textOf(paragraph).insert(at, s); return { ok: true } },
  delete: ({ paragraph, at, len }) => { textOf(paragraph).delete(at, len); return { ok: true } },
  suggest_insert: ({ paragraph, at, text: s, author }) => {
    textOf(paragraph).insert(at, s, { insertion: { author, time: Date.now() } })
    return { ok: true }
  },
  read: () => ({ paragraphs: paragraphs(), text: text() }),
  wait_text: async ({ text: expected, timeout_ms: t = 10000 }) => {
    const ok = await waitFor(() => text() === expected, t, (l) => doc.on('update', l), (l) => doc.off('update', l))
    return { ok, text: text() }
  },
  awareness: ({ state }) => { provider.awareness.setLocalState(state); return { ok: true } },
  awareness_states: () => ({ states: Object.fromEntries(provider.awareness.getStates()) }),
  close: () => {
    provider.destroy()
    setTimeout(() => process.exit(0), 50)
    return { ok: true }
  }
}

const lines = readline.createInterface({ input: process.stdin })
lines.on('line', async (line) => {
  if (line.trim() === '') return
  let command
  try {
    command = JSON.parse(line)
  } catch (e) {
    return out({ error: `not JSON: ${e.message}` })
  }
  const handler = commands[command.cmd]
  if (!handler) return out({ id: command.id, error: `unknown command ${command.cmd}` })
  try {
    out({ id: command.id, ...(await handler(command)) })
  } catch (e) {
    out({ id: command.id, error: e.message })
  }
})
// The test closing stdin ends the client.
lines.on('close', () => { provider.destroy(); setTimeout(() => process.exit(0), 50) })
