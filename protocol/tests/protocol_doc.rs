//! docs/protocol.md shows every message as bytes. This test encodes the same example messages
//! and fails when the document and the encoder disagree. `SYNCLINE_BLESS=1 cargo test -p
//! syncline-protocol --test protocol_doc` rewrites the byte blocks after an intended change.

use std::path::PathBuf;

use serde_bytes::ByteBuf;
use syncline_protocol::*;
use uuid::Uuid;

const CLIENT: Uuid = Uuid::from_u128(0x0192_d2f0_5b1c_7a00_8000_0000_0000_00c1);
const USER: Uuid = Uuid::from_u128(0x0192_d2f0_5b1c_7a00_8000_0000_0000_0a11);
const ORG: Uuid = Uuid::from_u128(0x0192_d2f0_5b1c_7a00_8000_0000_0000_0016);
const DOC: Uuid = Uuid::from_u128(0x0192_d2f0_5b1c_7a00_8000_0000_0000_0d0c);
/// The first bytes of an automerge change (its magic number), standing in for a whole one.
const PAYLOAD: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// A y-protocols awareness update: one client (id 1), clock 1, state `{}`.
const AWARENESS: [u8; 6] = [0x01, 0x01, 0x01, 0x02, 0x7b, 0x7d];

fn examples() -> Vec<(&'static str, Vec<u8>)> {
    let mid = MutationId {
        client_id: CLIENT,
        seq: 1,
    };
    let c = |m: ClientMessage| encode(&m).expect("encode");
    // Server frames carry their number on the connection; `welcome` is always frame 1, the
    // others show a frame somewhere later in a session.
    let s = |m: ServerMessage| {
        let n = if matches!(m, ServerMessage::Welcome { .. }) {
            1
        } else {
            7
        };
        encode_server_frame(n, &m).expect("encode")
    };
    vec![
        (
            "hello",
            c(ClientMessage::Hello {
                protocol_version: 2,
                token: "eyJ".into(),
                client_id: CLIENT,
            }),
        ),
        (
            "subscribe",
            c(ClientMessage::Subscribe {
                sub_id: 1,
                scope: Scope::Collection {
                    collection: "tasks".into(),
                },
                cursor: Some(41),
            }),
        ),
        ("unsubscribe", c(ClientMessage::Unsubscribe { sub_id: 1 })),
        (
            "push",
            c(ClientMessage::Push {
                mutations: vec![Mutation {
                    mid,
                    doc_id: DOC,
                    collection: "tasks".into(),
                    payload: ByteBuf::from(PAYLOAD.to_vec()),
                }],
            }),
        ),
        (
            "reauth",
            c(ClientMessage::Reauth {
                token: "eyJ".into(),
            }),
        ),
        ("ping", c(ClientMessage::Ping { nonce: 7 })),
        (
            "awareness (client)",
            c(ClientMessage::Awareness {
                doc_id: DOC,
                update: ByteBuf::from(AWARENESS.to_vec()),
            }),
        ),
        (
            "welcome",
            s(ServerMessage::Welcome {
                protocol_version: 2,
                user_id: USER,
                org_id: ORG,
                session_expires_at: 1_795_000_000,
            }),
        ),
        (
            "snapshot",
            s(ServerMessage::Snapshot {
                sub_id: 1,
                docs: vec![DocSnapshot {
                    doc_id: DOC,
                    collection: "tasks".into(),
                    state: ByteBuf::from(PAYLOAD.to_vec()),
                }],
            }),
        ),
        (
            "synced",
            s(ServerMessage::Synced {
                sub_id: 1,
                cursor: 42,
            }),
        ),
        (
            "change",
            s(ServerMessage::Change {
                seq: 42,
                doc_id: DOC,
                collection: "tasks".into(),
                payload: ByteBuf::from(PAYLOAD.to_vec()),
                mid: Some(mid),
            }),
        ),
        ("ack", s(ServerMessage::Ack { mid, seq: 42 })),
        (
            "reject",
            s(ServerMessage::Reject {
                mid,
                code: ErrorCode::InvalidEnumValue,
                message: "status: `someday`".into(),
            }),
        ),
        ("evict", s(ServerMessage::Evict { doc_id: DOC })),
        (
            "reauthed",
            s(ServerMessage::Reauthed {
                session_expires_at: 1_795_000_900,
            }),
        ),
        ("pong", s(ServerMessage::Pong { nonce: 7 })),
        (
            "awareness (server)",
            s(ServerMessage::Awareness {
                doc_id: DOC,
                update: ByteBuf::from(AWARENESS.to_vec()),
            }),
        ),
        (
            "error",
            s(ServerMessage::Error {
                code: ErrorCode::UnknownMessageType,
                message: "unknown message type `x`".into(),
            }),
        ),
    ]
}

fn hex_lines(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|row| {
            row.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md")
}

/// Replaces the fenced block after each `<!-- frame: NAME -->` marker with the encoding.
fn render(doc: &str) -> String {
    let mut out = String::new();
    let mut lines = doc.lines().peekable();
    let examples = examples();
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        let Some(name) = line
            .strip_prefix("<!-- frame: ")
            .and_then(|l| l.strip_suffix(" -->"))
        else {
            continue;
        };
        let (_, bytes) = examples
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no example `{name}`"));
        // Skip the old block.
        if lines.peek().is_some_and(|l| l.starts_with("```")) {
            lines.next();
            for l in lines.by_ref() {
                if l.starts_with("```") {
                    break;
                }
            }
        }
        out.push_str("```text\n");
        out.push_str(&hex_lines(bytes));
        out.push_str("\n```\n");
    }
    out
}

#[test]
fn protocol_doc_shows_the_real_encoding_of_every_message() {
    let doc = std::fs::read_to_string(doc_path()).expect("read docs/protocol.md");
    for (name, _) in examples() {
        assert!(
            doc.contains(&format!("<!-- frame: {name} -->")),
            "docs/protocol.md has no example for `{name}`"
        );
    }
    let rendered = render(&doc);
    if std::env::var_os("SYNCLINE_BLESS").is_some() {
        std::fs::write(doc_path(), rendered).expect("write docs/protocol.md");
        return;
    }
    assert!(
        rendered == doc,
        "docs/protocol.md byte examples are stale: rerun with SYNCLINE_BLESS=1"
    );
}

#[test]
fn every_example_decodes_back() {
    for (name, bytes) in examples() {
        let ok = decode_client(&bytes).is_ok() || decode_server_frame(&bytes).is_ok();
        assert!(ok, "example `{name}` does not decode");
    }
}
