//! The few lib0 encodings y-protocols messages use (variable-length unsigned integers, byte
//! arrays and strings prefixed with their length), read without trusting the input: every read
//! is bounds-checked and returns an error instead of panicking, so hostile frames never reach
//! yrs's decoders (whose `ClientID::new` asserts in debug builds on ids wider than 53 bits).

/// Largest integer lib0 encodes losslessly (JavaScript's `Number.MAX_SAFE_INTEGER`); Yjs client
/// ids and awareness client ids are below it.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Lib0Error {
    #[error("message ends early")]
    EndOfBuffer,
    #[error("integer too large")]
    Overflow,
    #[error("string is not UTF-8")]
    NotUtf8,
}

/// Reads lib0 values from a byte slice.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// A `writeVarUint` value up to [`MAX_SAFE_INTEGER`].
    pub fn var_uint(&mut self) -> Result<u64, Lib0Error> {
        let mut value: u64 = 0;
        // At most 8 bytes (56 bits) are read before giving up.
        for shift in (0..56).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or(Lib0Error::EndOfBuffer)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return if value <= MAX_SAFE_INTEGER {
                    Ok(value)
                } else {
                    Err(Lib0Error::Overflow)
                };
            }
        }
        Err(Lib0Error::Overflow)
    }

    /// A `writeVarUint` value that must fit a `u32` (clocks).
    pub fn var_u32(&mut self) -> Result<u32, Lib0Error> {
        u32::try_from(self.var_uint()?).map_err(|_| Lib0Error::Overflow)
    }

    /// A `writeVarUint8Array` value.
    pub fn var_bytes(&mut self) -> Result<&'a [u8], Lib0Error> {
        let len = usize::try_from(self.var_uint()?).map_err(|_| Lib0Error::Overflow)?;
        let end = self.pos.checked_add(len).ok_or(Lib0Error::Overflow)?;
        let bytes = self.buf.get(self.pos..end).ok_or(Lib0Error::EndOfBuffer)?;
        self.pos = end;
        Ok(bytes)
    }

    /// A `writeVarString` value.
    pub fn var_string(&mut self) -> Result<&'a str, Lib0Error> {
        std::str::from_utf8(self.var_bytes()?).map_err(|_| Lib0Error::NotUtf8)
    }
}

/// Writes lib0 values.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn var_uint(&mut self, mut value: u64) -> &mut Self {
        while value >= 0x80 {
            self.buf.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
        self
    }

    pub fn var_bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.var_uint(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
        self
    }

    pub fn var_string(&mut self, s: &str) -> &mut Self {
        self.var_bytes(s.as_bytes())
    }

    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_up_to_the_safe_limit() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), MAX_SAFE_INTEGER] {
            let bytes = Writer::new().var_uint(value).finish();
            let mut r = Reader::new(&bytes);
            assert_eq!(r.var_uint(), Ok(value));
            assert_eq!(r.var_uint(), Err(Lib0Error::EndOfBuffer));
        }
        let too_big = Writer::new().var_uint(MAX_SAFE_INTEGER + 1).finish();
        assert_eq!(Reader::new(&too_big).var_uint(), Err(Lib0Error::Overflow));
        let endless = [0xff; 12];
        assert_eq!(Reader::new(&endless).var_uint(), Err(Lib0Error::Overflow));
    }

    #[test]
    fn lengths_past_the_end_and_bad_utf8_are_errors() {
        let mut w = Writer::new();
        w.var_uint(10).var_uint(1);
        assert_eq!(
            Reader::new(&w.finish()).var_bytes(),
            Err(Lib0Error::EndOfBuffer)
        );
        let bytes = Writer::new().var_bytes(&[0xff, 0xfe]).finish();
        assert_eq!(Reader::new(&bytes).var_string(), Err(Lib0Error::NotUtf8));
        let bytes = Writer::new().var_string("héllo").finish();
        assert_eq!(Reader::new(&bytes).var_string(), Ok("héllo"));
    }
}
