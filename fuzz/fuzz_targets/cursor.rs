//! `after`/`before` cursors come from clients: decoding any string must not
//! panic, and only a cursor this server gives out may decode (round trip).

#![no_main]

use chatroom::chat::messages::{decode_cursor, encode_cursor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The other direction: any seq we hand out decodes back to itself.
    if let Ok(bytes) = <[u8; 8]>::try_from(data) {
        let seq = i64::from_le_bytes(bytes).checked_abs().unwrap_or(0);
        assert_eq!(decode_cursor("after", &encode_cursor(seq)).ok(), Some(seq));
    }

    let Ok(cursor) = std::str::from_utf8(data) else {
        return;
    };
    match decode_cursor("after", cursor) {
        Ok(seq) => {
            assert!(seq >= 0, "{cursor:?} decoded to a negative seq {seq}");
            assert_eq!(
                encode_cursor(seq),
                cursor,
                "{cursor:?} decoded to {seq}, which encodes differently"
            );
        }
        Err(error) => {
            assert_eq!(error.code(), "BAD_USER_INPUT", "{cursor:?}");
            assert_eq!(error.field(), Some("after"), "{cursor:?}");
        }
    }
});
