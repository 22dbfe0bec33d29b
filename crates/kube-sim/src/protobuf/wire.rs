//! The protobuf wire format, read-only: field keys, varints, fixed-width numbers and
//! length-delimited runs (<https://protobuf.dev/programming-guides/encoding/>).

use crate::error::SimError;

/// One field's value as it sits on the wire.
#[derive(Debug, Clone, Copy)]
pub enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    /// A 32-bit value (float, fixed32): no Kubernetes field uses one, so only skipped.
    Fixed32,
}

pub struct Reader<'a> {
    buf: &'a [u8],
}

fn truncated() -> SimError {
    SimError::BadRequest("error decoding protobuf request body: truncated message".into())
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn varint(&mut self) -> Result<u64, SimError> {
        let mut out = 0u64;
        for (i, b) in self.buf.iter().enumerate().take(10) {
            out |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Ok(out);
            }
        }
        Err(truncated())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SimError> {
        if self.buf.len() < n {
            return Err(truncated());
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// The next field's number and value, or None at the end.
    pub fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, SimError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| truncated())?;
        let v = match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                WireValue::Fixed64(u64::from_le_bytes(b.try_into().map_err(|_| truncated())?))
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| truncated())?;
                WireValue::Len(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                WireValue::Fixed32
            }
            w => {
                return Err(SimError::BadRequest(format!(
                    "error decoding protobuf request body: wire type {w} is not supported"
                )))
            }
        };
        Ok(Some((tag, v)))
    }
}
