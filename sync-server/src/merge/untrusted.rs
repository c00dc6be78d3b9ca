//! Guards around automerge calls on a pushed payload, which a client controls byte for byte.
//!
//! Why this exists: automerge 0.12.0 does not validate changes fully. Fuzzing (see
//! `docs/fuzzing.md`, "Known upstream panics", and the inputs in
//! `protocol/fuzz/upstream-panics/`) found crafted payloads that make it panic instead of
//! returning an error: `Change::from_bytes`, `Automerge::apply_changes` (in release builds too),
//! `Change::decode` inside `rules::touched_fields`, and, with debug assertions, `parents()` on an
//! object deleted from a list, which even an honest change reaches. Such a panic would abort the
//! push's task and drop the client's connection with the transaction. [`guard`] runs each of
//! these calls under `catch_unwind` and turns a panic into an `invalid_change` refusal.
//!
//! Unwind safety: a guarded closure only reads shared state (the working document, the ACL)
//! and mutates values it owns (the parsed change, a clone of the working document). Automerge
//! keeps no interior mutability, so a panic halfway leaves nothing half-modified behind; the
//! working copy is replaced only after the whole check returned normally.
//!
//! Separately, `Change::from_bytes` inflates a compressed change chunk without any limit (a
//! 97 KB payload becomes a 100 MB change). [`check_chunk`] inflates such a chunk itself through
//! a reader capped at [`MAX_INFLATED_CHANGE_BYTES`] before automerge sees it.

use std::any::Any;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};

use syncline_protocol::{ErrorCode, MutationId};

use super::document::{Refusal, refuse};

/// Largest change a compressed payload may inflate to (the payload itself is capped at
/// [`super::MAX_CHANGE_BYTES`] before this).
pub const MAX_INFLATED_CHANGE_BYTES: usize = 4 << 20;

/// The message of the refusal sent when automerge panicked on a change.
pub const PANIC_REFUSAL: &str = "malformed change: automerge could not process it";

/// Runs `f`, an automerge call on untrusted input, turning a panic into an `invalid_change`
/// refusal (logged with the mutation id and the step that panicked).
///
/// `f` must only read shared state and mutate what it owns (see the module docs): that is what
/// makes the `AssertUnwindSafe` sound. The default panic hook still prints the panic.
pub fn guard<T>(
    mid: MutationId,
    step: &'static str,
    f: impl FnOnce() -> Result<T, Refusal>,
) -> Result<T, Refusal> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            tracing::warn!(
                client_id = %mid.client_id,
                seq = mid.seq,
                step,
                panic = panic_message(panic.as_ref()),
                "refused a change that made automerge panic",
            );
            Err(refuse(ErrorCode::InvalidChange, PANIC_REFUSAL))
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// The first four bytes of every automerge chunk.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// Chunk types (the byte after the magic and the 4-byte checksum).
const CHUNK_CHANGE: u8 = 1;
const CHUNK_COMPRESSED_CHANGE: u8 = 2;

/// Refuses, before automerge parses it, a payload that would inflate beyond
/// [`MAX_INFLATED_CHANGE_BYTES`].
///
/// A chunk is `magic (4) | checksum (4) | type (1) | ULEB128 length | data`. A compressed
/// change (type 2) holds the raw DEFLATE stream of the change's body: it is inflated here
/// through a capped reader and refused with `too_large` when the output passes the cap. Other
/// chunk types than a change are refused too: `Change::from_bytes` would refuse them anyway, but
/// only after parsing them, and a document chunk inflates its compressed columns just as freely.
/// A payload that is not a chunk at all is left to automerge, which refuses it.
pub fn check_chunk(payload: &[u8]) -> Result<(), Refusal> {
    let Some(header) = payload.get(..9).filter(|h| h[..4] == MAGIC) else {
        return Ok(());
    };
    match header[8] {
        CHUNK_CHANGE => Ok(()),
        CHUNK_COMPRESSED_CHANGE => {
            let Some((len, len_bytes)) = uleb128(&payload[9..]) else {
                return Err(refuse(ErrorCode::InvalidChange, "malformed chunk length"));
            };
            let data = &payload[9 + len_bytes..];
            // A length past the end is automerge's error to report; inflating what is there
            // bounds the output all the same.
            let data = usize::try_from(len)
                .ok()
                .and_then(|len| data.get(..len))
                .unwrap_or(data);
            let mut inflated = Vec::new();
            let cap = MAX_INFLATED_CHANGE_BYTES as u64;
            flate2::bufread::DeflateDecoder::new(data)
                .take(cap + 1)
                .read_to_end(&mut inflated)
                .map_err(|e| {
                    refuse(
                        ErrorCode::InvalidChange,
                        format!("compressed change does not inflate: {e}"),
                    )
                })?;
            if inflated.len() > MAX_INFLATED_CHANGE_BYTES {
                return Err(refuse(
                    ErrorCode::TooLarge,
                    format!(
                        "a compressed change may inflate to at most {MAX_INFLATED_CHANGE_BYTES} bytes"
                    ),
                ));
            }
            Ok(())
        }
        other => Err(refuse(
            ErrorCode::InvalidChange,
            format!("not an automerge change: chunk type {other}"),
        )),
    }
}

/// Reads an unsigned LEB128 number (at most 10 bytes); returns it and its length.
fn uleb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uleb128_reads_numbers_and_refuses_unterminated_ones() {
        assert_eq!(uleb128(&[0x05]), Some((5, 1)));
        assert_eq!(uleb128(&[0xe5, 0x8e, 0x26, 0xff]), Some((624_485, 3)));
        assert_eq!(uleb128(&[0x80; 11]), None);
        assert_eq!(uleb128(&[]), None);
    }

    #[test]
    fn a_panic_becomes_an_invalid_change() {
        let mid = MutationId {
            client_id: uuid::Uuid::nil(),
            seq: 1,
        };
        let refusal = guard(mid, "testing", || -> Result<(), Refusal> {
            panic!("upstream bug")
        })
        .expect_err("refused");
        assert_eq!(refusal.code, ErrorCode::InvalidChange);
        assert_eq!(guard(mid, "testing", || Ok(7)).ok(), Some(7));
    }

    /// A change putting a string of `len` bytes, as automerge sends it (compressed).
    fn compressed_change(len: usize) -> Vec<u8> {
        use automerge::transaction::Transactable;
        let mut doc = automerge::AutoCommit::new();
        doc.put(automerge::ROOT, "title", "x".repeat(len))
            .expect("put");
        doc.commit();
        let mut change = doc.get_last_local_change().expect("a change");
        change.bytes().into_owned()
    }

    #[test]
    fn compressed_changes_inflate_up_to_the_cap() {
        let small = compressed_change(1000);
        assert_eq!(small[8], CHUNK_COMPRESSED_CHANGE, "automerge compressed it");
        assert!(check_chunk(&small).is_ok());
        let huge = compressed_change(MAX_INFLATED_CHANGE_BYTES);
        assert_eq!(huge[8], CHUNK_COMPRESSED_CHANGE);
        assert!(huge.len() < 64 << 10, "{} bytes", huge.len());
        let refusal = check_chunk(&huge).expect_err("over the cap");
        assert_eq!(refusal.code, ErrorCode::TooLarge);
        // Truncated: the stream does not inflate.
        let refusal = check_chunk(&small[..small.len() / 2]).expect_err("truncated");
        assert_eq!(
            refusal.code,
            ErrorCode::InvalidChange,
            "{}",
            refusal.message
        );
    }

    #[test]
    fn non_change_chunks_are_refused_before_parsing() {
        let mut doc_chunk = MAGIC.to_vec();
        doc_chunk.extend([0, 0, 0, 0, 0, 0]);
        let refusal = check_chunk(&doc_chunk).expect_err("a document chunk");
        assert_eq!(refusal.code, ErrorCode::InvalidChange);
        assert!(check_chunk(b"not a chunk at all").is_ok());
    }
}
