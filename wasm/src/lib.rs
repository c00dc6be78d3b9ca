//! # syncline-wasm
//!
//! Browser bindings. Today it exposes the protocol version and frame inspection so a page can
//! check compatibility; the bindings of `client-core` (SQLite on OPFS via sqlite-wasm-rs, the
//! browser WebSocket transport, TypeScript types) land here next (see docs/architecture.md).

use wasm_bindgen::prelude::*;

/// The sync protocol version this build speaks.
#[wasm_bindgen(js_name = protocolVersion)]
pub fn protocol_version() -> u32 {
    syncline_protocol::PROTOCOL_VERSION
}

/// The `type` of a server frame (e.g. `"change"`), or an error naming why it does not decode.
#[wasm_bindgen(js_name = serverMessageType)]
pub fn server_message_type(frame: &[u8]) -> Result<String, JsError> {
    let message =
        syncline_protocol::decode_server(frame).map_err(|e| JsError::new(&e.to_string()))?;
    let encoded = syncline_protocol::encode(&message).map_err(|e| JsError::new(&e.to_string()))?;
    // Re-read the tag from the canonical encoding rather than duplicating the name table.
    Ok(message_tag(&encoded).unwrap_or_default())
}

fn message_tag(frame: &[u8]) -> Option<String> {
    // The first map entry of an encoded message is its `type` (serde writes the tag first):
    // 0xA? (map) 0x64 "type" 0x6? <name>.
    let rest = frame.get(1..)?;
    let rest = rest.strip_prefix(&[0x64, b't', b'y', b'p', b'e'])?;
    let len = usize::from(rest.first()? & 0x1f);
    std::str::from_utf8(rest.get(1..1 + len)?)
        .ok()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncline_protocol::{ServerMessage, encode};

    #[test]
    fn reads_the_type_of_a_server_frame() {
        let frame = encode(&ServerMessage::Pong { nonce: 3 }).expect("encode");
        assert_eq!(message_tag(&frame).as_deref(), Some("pong"));
        assert_eq!(protocol_version(), syncline_protocol::PROTOCOL_VERSION);
    }
}
