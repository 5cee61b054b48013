//! The records' wire format: Confluent framing around the Avro datum. A magic byte 0, the
//! writer schema's registry id as 4 big-endian bytes, then the datum. The producer writes it,
//! the consumer reads it, and every test and bench that makes or reads records by hand uses
//! these two functions, so the format has one definition.

/// Bytes of framing before the datum.
pub const HEADER_LEN: usize = 5;

const MAGIC: u8 = 0;

/// Appends the framing for `schema_id` to `out`; the datum goes right after it.
pub fn write_header(schema_id: u32, out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// `datum` framed with `schema_id`, as one value.
pub fn frame(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(HEADER_LEN + datum.len());
    write_header(schema_id, &mut value);
    value.extend_from_slice(datum);
    value
}

/// The schema id and the datum of a framed value; None if it is not Confluent-framed.
pub fn unframe(bytes: &[u8]) -> Option<(u32, &[u8])> {
    match bytes {
        [MAGIC, a, b, c, d, datum @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confluent_framing_is_magic_byte_then_schema_id() {
        assert_eq!(unframe(&[0, 0, 0, 1, 2, 9, 9]), Some((258, &[9u8, 9][..])));
        assert_eq!(unframe(&[0, 0, 0, 0, 7]), Some((7, &[][..])));
        assert_eq!(unframe(&[1, 0, 0, 0, 7, 9]), None);
        assert_eq!(unframe(&[0, 0, 0]), None);
    }

    #[test]
    fn what_is_framed_unframes_to_itself() {
        let value = frame(70_000, b"datum");
        assert_eq!(value.len(), HEADER_LEN + 5);
        assert_eq!(unframe(&value), Some((70_000, &b"datum"[..])));
    }
}
