//! The primitives of the store's compact binary encodings (journal events, audit chunks):
//! LEB128 varints, zigzag for signed values, length-prefixed text. A reader never panics on
//! malformed bytes: every read is bounds-checked and reports what it could not read.

use crate::error::StoreError;

/// Appends values to a byte buffer the caller may reuse.
pub(crate) struct Writer<'a> {
    pub bytes: &'a mut Vec<u8>,
}

impl Writer<'_> {
    pub fn byte(&mut self, value: u8) {
        self.bytes.push(value);
    }

    pub fn unsigned(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }

    pub fn signed(&mut self, value: i64) {
        self.unsigned(((value << 1) ^ (value >> 63)) as u64);
    }

    pub fn text(&mut self, text: &str) {
        self.unsigned(text.len() as u64);
        self.bytes.extend_from_slice(text.as_bytes());
    }

    /// `None` as 0, a text as its length + 1 and its bytes.
    pub fn optional_text(&mut self, text: Option<&str>) {
        match text {
            None => self.unsigned(0),
            Some(text) => {
                self.unsigned(text.len() as u64 + 1);
                self.bytes.extend_from_slice(text.as_bytes());
            }
        }
    }

    /// `None` as 0, a value as 1 and its zigzag varint.
    pub fn optional_signed(&mut self, value: Option<i64>) {
        match value {
            None => self.byte(0),
            Some(value) => {
                self.byte(1);
                self.signed(value);
            }
        }
    }

    pub fn optional_unsigned(&mut self, value: Option<u64>) {
        match value {
            None => self.byte(0),
            Some(value) => {
                self.byte(1);
                self.unsigned(value);
            }
        }
    }
}

/// Reads values back; `what` names the encoding in errors.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self {
            bytes,
            offset: 0,
            what,
        }
    }

    pub fn error(&self, detail: impl Into<String>) -> StoreError {
        StoreError::Codec {
            direction: "decode",
            what: self.what,
            source: format!("{} at byte {}", detail.into(), self.offset).into(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.offset >= self.bytes.len()
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.offset)
    }

    pub fn byte(&mut self) -> Result<u8, StoreError> {
        let value = *self
            .bytes
            .get(self.offset)
            .ok_or_else(|| self.error("truncated"))?;
        self.offset += 1;
        Ok(value)
    }

    pub fn unsigned(&mut self) -> Result<u64, StoreError> {
        let mut value = 0_u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error("a varint longer than 64 bits"))
    }

    pub fn signed(&mut self) -> Result<i64, StoreError> {
        let value = self.unsigned()?;
        Ok(((value >> 1) as i64) ^ -((value & 1) as i64))
    }

    pub fn slice(&mut self, length: usize) -> Result<&'a [u8], StoreError> {
        let end = self
            .offset
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| self.error("truncated"))?;
        let slice = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(slice)
    }

    fn str_of_length(&mut self, length: u64) -> Result<&'a str, StoreError> {
        let length = usize::try_from(length).map_err(|_| self.error("a text too long"))?;
        let bytes = self.slice(length)?;
        std::str::from_utf8(bytes).map_err(|e| self.error(format!("text is not UTF-8: {e}")))
    }

    pub fn text(&mut self) -> Result<&'a str, StoreError> {
        let length = self.unsigned()?;
        self.str_of_length(length)
    }

    pub fn optional_text(&mut self) -> Result<Option<&'a str>, StoreError> {
        match self.unsigned()? {
            0 => Ok(None),
            length => self.str_of_length(length - 1).map(Some),
        }
    }

    fn present(&mut self) -> Result<bool, StoreError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.error(format!("presence byte {other}"))),
        }
    }

    pub fn optional_signed(&mut self) -> Result<Option<i64>, StoreError> {
        if self.present()? {
            self.signed().map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn optional_unsigned(&mut self) -> Result<Option<u64>, StoreError> {
        if self.present()? {
            self.unsigned().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Parses an id type from the next text.
    pub fn id<T>(
        &mut self,
        parse: fn(String) -> Result<T, stockflow_core::ids::IdError>,
    ) -> Result<T, StoreError> {
        let text = self.text()?;
        parse(text.to_owned()).map_err(|e| self.error(e.to_string()))
    }

    pub fn optional_id<T>(
        &mut self,
        parse: fn(String) -> Result<T, stockflow_core::ids::IdError>,
    ) -> Result<Option<T>, StoreError> {
        match self.optional_text()? {
            None => Ok(None),
            Some(text) => parse(text.to_owned())
                .map(Some)
                .map_err(|e| self.error(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_truncation_is_an_error() {
        let mut bytes = Vec::new();
        let mut writer = Writer { bytes: &mut bytes };
        for value in [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN] {
            writer.signed(value);
        }
        writer.unsigned(u64::MAX);
        writer.text("SKU-1");
        writer.optional_text(None);
        writer.optional_text(Some(""));
        writer.optional_unsigned(Some(7));
        let mut reader = Reader::new(&bytes, "test");
        for value in [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN] {
            assert_eq!(reader.signed().unwrap(), value);
        }
        assert_eq!(reader.unsigned().unwrap(), u64::MAX);
        assert_eq!(reader.text().unwrap(), "SKU-1");
        assert_eq!(reader.optional_text().unwrap(), None);
        assert_eq!(reader.optional_text().unwrap(), Some(""));
        assert_eq!(reader.optional_unsigned().unwrap(), Some(7));
        assert!(reader.is_empty());
        assert!(reader.byte().is_err());
        let mut short = Reader::new(&[5, b'a'], "test");
        assert!(short.text().is_err());
        let mut endless = Reader::new(&[0xff; 11], "test");
        assert!(endless.unsigned().is_err());
    }
}
