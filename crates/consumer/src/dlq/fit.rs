//! Cutting a dead letter to fit the DLQ: a record that is poison because it is huge must
//! still be parked, not refused by the producer for ever. The reason is cut first (it is
//! for a person to read), then the value gets the room that is left.

/// What a record costs beyond its key, value and headers: librdkafka counts up to 40 bytes
/// of record framing, the broker also the batch's 61; the rest is margin.
pub const FRAMING: usize = 512;

/// The longest reason a dead letter carries, in bytes. Reasons quote the input (a field
/// value, the first bytes of the record), so one can be as large as the record.
pub const REASON_LIMIT: usize = 4096;

/// Room kept for the headers a cut value adds (`dlq.value.truncated`,
/// `dlq.value.original.size`).
pub const CUT_HEADERS: usize = 128;

/// Bytes a header takes in a record: its key and value, each behind a varint length
/// (counted as 5 bytes, their most).
pub fn header_bytes(key: &str, value: Option<&[u8]>) -> usize {
    key.len() + value.map_or(0, <[u8]>::len) + 10
}

/// Room for the value of a dead letter of at most `limit` bytes with this key and headers.
pub fn value_room(limit: usize, key: usize, headers: usize) -> usize {
    limit.saturating_sub(FRAMING + CUT_HEADERS + key + headers)
}

/// `value`, cut to `room` bytes, and its original size when it was cut.
pub fn cut_bytes(value: &[u8], room: usize) -> (&[u8], Option<usize>) {
    if value.len() <= room {
        (value, None)
    } else {
        (&value[..room], Some(value.len()))
    }
}

/// `text`, cut to at most `max` bytes on a character boundary, and its original size (in
/// bytes) when it was cut.
pub fn cut_text(text: &str, max: usize) -> (&str, Option<usize>) {
    if text.len() <= max {
        return (text, None);
    }
    let end = (0..=max)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    (&text[..end], Some(text.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_over_the_limit_is_cut_so_that_the_whole_letter_fits() {
        let limit = 1_000_000;
        let value = vec![7u8; 1_040_000];
        let headers: usize = [("dlq.error", 300), ("dlq.source.topic", 40)]
            .iter()
            .map(|(k, n)| header_bytes(k, Some(&vec![0; *n])))
            .sum();
        let (cut, original) = cut_bytes(&value, value_room(limit, 1, headers));
        assert_eq!(original, Some(1_040_000));
        let cut_headers = header_bytes("dlq.value.truncated", Some(b"true"))
            + header_bytes("dlq.value.original.size", Some(b"1040000"));
        assert!(cut_headers <= CUT_HEADERS);
        // What librdkafka checks against message.max.bytes, with its framing.
        assert!(40 + 1 + cut.len() + headers + cut_headers <= limit);
        assert!(cut.len() > limit - 2048, "cut no more than needed");
    }

    #[test]
    fn a_value_that_fits_is_kept_whole_and_no_room_means_empty() {
        assert_eq!(cut_bytes(b"abc", 3), (&b"abc"[..], None));
        assert_eq!(cut_bytes(b"abc", 0), (&b""[..], Some(3)));
        assert_eq!(value_room(100, 10, 10), 0, "headers alone over the limit");
    }

    #[test]
    fn a_reason_is_cut_on_a_character_boundary() {
        assert_eq!(cut_text("short", REASON_LIMIT), ("short", None));
        // 'é' is two bytes: a cut at 3 bytes would split the second one.
        assert_eq!(cut_text("éé", 3), ("é", Some(4)));
        let long = "x".repeat(REASON_LIMIT * 3);
        let (cut, original) = cut_text(&long, REASON_LIMIT);
        assert_eq!(
            (cut.len(), original),
            (REASON_LIMIT, Some(REASON_LIMIT * 3))
        );
    }
}
