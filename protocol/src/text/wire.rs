//! [`check_update_v1`]: a structural walk of a lib0 v1 Yjs update that must pass before any yrs
//! decoder sees bytes from the network.
//!
//! yrs 0.28.1 decodes trusted peers' updates; three inputs from an untrusted one hurt it:
//!
//! - nested `Any` arrays or maps are decoded recursively, so a few hundred kilobytes of `[[[[…`
//!   overflow the stack and abort the process (not catchable);
//! - declared counts (clients of an update, entries of an `Any` map) reserve hash tables before
//!   any entry is read, so five bytes can make it allocate and clear hundreds of megabytes;
//! - client ids wider than 53 bits fail a `debug_assert` (a panic in debug builds);
//! - deleting (and garbage-collecting) a shared type recurses into the types nested in it, so a
//!   chain of thousands of nested elements, created and deleted, overflows the stack.
//!
//! The walk mirrors yrs's `Update::decode` (block layout, item content by reference number, the
//! delete set) with its own reader, accepts a count only if the remaining input could hold that
//! many entries, bounds `Any` nesting by [`MAX_DEPTH`], bounds client ids, and bounds how deeply
//! the update nests the types it creates (see the `nesting` module; how deep the document already
//! is is checked after a trial application). What it accepts yrs may still refuse (e.g. invalid
//! UTF-8 or JSON); what it refuses, yrs must not see.

use super::nesting::{Item, Parent, deepest_new_type};
use super::{MAX_DEPTH, TextRefusal};
use crate::codes::ErrorCode;

/// Largest client id yrs accepts (Yjs client ids are 53-bit safe integers).
const MAX_CLIENT: u64 = (1 << 53) - 1;

/// Checks that `update` is structurally a v1 update yrs can decode safely: refuses it with
/// [`ErrorCode::InvalidChange`] if malformed, or [`ErrorCode::TooLarge`] if it nests values or
/// the types it creates deeper than [`MAX_DEPTH`]. [`authorize_update`](super::authorize_update)
/// runs it first; run it before any other yrs decoding of client bytes too (e.g. the updates of
/// the y-websocket endpoint's sync messages).
pub fn check_update_v1(update: &[u8]) -> Result<(), TextRefusal> {
    check_update_shape(update).map(|_| ())
}

/// [`check_update_v1`], also telling whether the update creates shared types (elements, nested
/// texts): only such an update can make the document nest deeper.
pub(crate) fn check_update_shape(update: &[u8]) -> Result<bool, TextRefusal> {
    let mut r = Reader {
        buf: update,
        pos: 0,
    };
    let mut items = Vec::new();
    let clients = r.count(3)?;
    for _ in 0..clients {
        let blocks = r.count(1)?;
        let client = r.client()?;
        let mut clock = r.var()?;
        for _ in 0..blocks {
            let (len, item) = r.block()?;
            if let Some((parent, is_type)) = item {
                items.push(Item {
                    client,
                    clock,
                    len,
                    parent,
                    is_type,
                });
            }
            clock = clock.saturating_add(len);
        }
    }
    let creates_types = items.iter().any(|i| i.is_type);
    if deepest_new_type(&mut items) > MAX_DEPTH {
        return Err(TextRefusal::too_deep());
    }
    let clients = r.count(2)?;
    for _ in 0..clients {
        r.client()?;
        for _ in 0..r.count(2)? {
            r.var()?; // clock
            r.var()?; // length
        }
    }
    Ok(creates_types)
}

fn malformed(what: &str) -> TextRefusal {
    TextRefusal::new(
        ErrorCode::InvalidChange,
        format!("not a valid Yjs update: {what}"),
    )
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn u8(&mut self) -> Result<u8, TextRefusal> {
        let byte = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| malformed("unexpected end"))?;
        self.pos += 1;
        Ok(byte)
    }

    fn skip(&mut self, n: usize) -> Result<(), TextRefusal> {
        if n > self.remaining() {
            return Err(malformed("unexpected end"));
        }
        self.pos += n;
        Ok(())
    }

    /// An unsigned LEB128 varint of at most 64 bits.
    fn var(&mut self) -> Result<u64, TextRefusal> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(malformed("variable-length integer too long"))
    }

    /// A count of entries that take at least `min_bytes` each, bounded by the input left.
    fn count(&mut self, min_bytes: usize) -> Result<usize, TextRefusal> {
        let n = self.var()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() / min_bytes => Ok(n),
            _ => Err(malformed("count larger than the update")),
        }
    }

    fn client(&mut self) -> Result<u64, TextRefusal> {
        let client = self.var()?;
        if client > MAX_CLIENT {
            return Err(malformed("client id wider than 53 bits"));
        }
        Ok(client)
    }

    fn id(&mut self) -> Result<(u64, u64), TextRefusal> {
        Ok((self.client()?, self.var()?))
    }

    /// A length-prefixed byte string (strings, binaries, JSON).
    fn bytes(&mut self) -> Result<&[u8], TextRefusal> {
        let len = self.count(1)?;
        let start = self.pos;
        self.skip(len)?;
        Ok(&self.buf[start..start + len])
    }

    fn skip_bytes(&mut self) -> Result<(), TextRefusal> {
        self.bytes().map(drop)
    }

    /// One block: its clock length and, for an item, its parent and whether it holds a type.
    fn block(&mut self) -> Result<(u64, Option<(Parent, bool)>), TextRefusal> {
        const GC: u8 = 0;
        const SKIP: u8 = 10;
        const HAS_ORIGIN: u8 = 0x80;
        const HAS_RIGHT_ORIGIN: u8 = 0x40;
        const HAS_PARENT_SUB: u8 = 0x20;
        let info = self.u8()?;
        if info == GC || info == SKIP {
            return Ok((self.var()?, None));
        }
        let origin = (info & HAS_ORIGIN != 0).then(|| self.id()).transpose()?;
        let right = (info & HAS_RIGHT_ORIGIN != 0)
            .then(|| self.id())
            .transpose()?;
        let parent = match origin.or(right) {
            Some((client, clock)) => Parent::Neighbor(client, clock),
            None => {
                let parent = if self.var()? == 1 {
                    self.skip_bytes()?; // root type name
                    Parent::Root
                } else {
                    let (client, clock) = self.id()?; // the parent type's item
                    Parent::Type(client, clock)
                };
                if info & HAS_PARENT_SUB != 0 {
                    self.skip_bytes()?;
                }
                parent
            }
        };
        let reference = info & 0x0f;
        let len = self.content(reference)?;
        Ok((len, Some((parent, reference == 7))))
    }

    /// Item content by reference number, as `ItemContent::decode` reads it; returns its clock
    /// length (UTF-16 units for strings, elements for lists, 1 otherwise).
    fn content(&mut self, reference: u8) -> Result<u64, TextRefusal> {
        match reference {
            1 => self.var(), // deleted: length
            2 => {
                // JSON: yrs reads one string more than the declared length.
                let n = self.count(1)?;
                if i32::try_from(n).is_err() {
                    return Err(malformed("count larger than the update"));
                }
                (0..=n).try_for_each(|_| self.skip_bytes())?;
                Ok(n as u64 + 1)
            }
            4 => {
                let text = std::str::from_utf8(self.bytes()?)
                    .map_err(|_| malformed("invalid UTF-8 in a string"))?;
                Ok(text.encode_utf16().count() as u64)
            }
            3 | 5 => self.skip_bytes().map(|()| 1), // binary, embed (JSON text)
            6 => {
                self.skip_bytes()?; // format key
                self.skip_bytes().map(|()| 1) // format value (JSON text)
            }
            7 => match self.u8()? {
                3 => self.skip_bytes().map(|()| 1), // XML element: tag
                _ => Ok(1),
            },
            8 => {
                let n = self.count(1)?;
                (0..n).try_for_each(|_| self.any(0))?;
                Ok(n as u64)
            }
            9 => {
                self.skip_bytes()?; // subdocument guid
                self.any(0).map(|()| 1) // its options
            }
            _ => Err(malformed("unknown content type")),
        }
    }

    /// A lib0 `Any` value.
    fn any(&mut self, depth: usize) -> Result<(), TextRefusal> {
        if depth > MAX_DEPTH {
            return Err(TextRefusal::new(
                ErrorCode::TooLarge,
                format!("update nests values deeper than {MAX_DEPTH} levels"),
            ));
        }
        match self.u8()? {
            120 | 121 | 126 | 127 => Ok(()), // true, false, null, undefined
            125 => self.var().map(drop),     // integer (signed varint, same length rule)
            124 => self.skip(4),             // float32
            122 | 123 => self.skip(8),       // bigint, float64
            116 | 119 => self.skip_bytes(),  // buffer, string
            118 => {
                for _ in 0..self.count(2)? {
                    self.skip_bytes()?;
                    self.any(depth + 1)?;
                }
                Ok(())
            }
            117 => (0..self.count(1)?).try_for_each(|_| self.any(depth + 1)),
            _ => Err(malformed("unknown value type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{
        Any, Array, Doc, Map, ReadTxn, StateVector, Text, Transact, WriteTxn, XmlElementPrelim,
        XmlFragment, XmlTextPrelim,
    };

    #[test]
    fn accepts_every_kind_of_content_yrs_writes() {
        let doc = Doc::with_client_id(3);
        {
            let mut txn = doc.transact_mut();
            let array = txn.get_or_insert_array("list");
            let nested = Any::from(vec![Any::from(1.5), Any::from("x"), Any::Null]);
            array.insert_range(&mut txn, 0, [nested, Any::from(true), Any::from(-7_i64)]);
            array.push_back(&mut txn, Any::from(vec![1u8, 2, 3]));
            array.push_back(&mut txn, Doc::new());
            let map = txn.get_or_insert_map("map");
            map.insert(&mut txn, "k", Any::from(f64::MAX));
            let text = txn.get_or_insert_text("text");
            text.insert(&mut txn, 0, "héllo 😀");
            text.insert_embed(&mut txn, 1, Any::from("embed"));
            let body = txn.get_or_insert_xml_fragment("prosemirror");
            let p = body.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
            p.push_back(&mut txn, XmlTextPrelim::new("text"));
            text.remove_range(&mut txn, 0, 1);
        }
        let update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        assert_eq!(check_update_v1(&update), Ok(()));
    }

    #[test]
    fn refuses_inputs_that_hurt_the_yrs_decoder() {
        // One client, one item with `Any` content under root "x", holding `depth` nested arrays.
        let nested = |depth: usize| {
            let mut bytes = vec![1u8, 1, 5, 0, 8, 1, 1, b'x', 1];
            for _ in 0..depth {
                bytes.extend([117u8, 1]);
            }
            bytes.extend([126, 0]);
            bytes
        };
        assert_eq!(check_update_v1(&nested(10)), Ok(()));
        let err = check_update_v1(&nested(100_000)).expect_err("deep");
        assert_eq!(err.code, ErrorCode::TooLarge);
        // Four billion clients declared in five bytes.
        let err = check_update_v1(&[0xff, 0xff, 0xff, 0xff, 0x0f]).expect_err("count");
        assert_eq!(err.code, ErrorCode::InvalidChange);
        // A map declaring a billion entries.
        let mut map = vec![1u8, 1, 5, 0, 8, 1, 1, b'x', 1, 118];
        map.extend([0x80, 0x80, 0x80, 0x80, 0x04, 0]);
        assert_eq!(
            check_update_v1(&map).map_err(|e| e.code),
            Err(ErrorCode::InvalidChange)
        );
        // A 64-bit client id.
        let mut wide = vec![1u8, 1];
        wide.extend([0xff; 9]);
        wide.extend([0x01, 0, 4, 1, 1, b'x', 1, b'a', 0]);
        assert_eq!(
            check_update_v1(&wide).map_err(|e| e.code),
            Err(ErrorCode::InvalidChange)
        );
        assert_eq!(check_update_v1(&[0, 0]), Ok(()));
    }
}
