//! `after`/`before`/`upTo` cursors come from clients: decoding any string
//! must not panic, and only a cursor this server gives out for the room may
//! decode (round trip).

#![no_main]

use chatroom::chat::messages::{Position, decode_position, encode_cursor, encode_event_cursor};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

/// The room every cursor is decoded for.
const ROOM: Uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);

fn encode(position: Position) -> String {
    match position {
        Position::Message(seq) => encode_cursor(ROOM, seq),
        Position::Event(rev) => encode_event_cursor(ROOM, rev),
    }
}

fuzz_target!(|data: &[u8]| {
    // The other direction: any position we hand out decodes back to itself.
    if let Ok(bytes) = <[u8; 8]>::try_from(data) {
        let number = i64::from_le_bytes(bytes).checked_abs().unwrap_or(0);
        for position in [Position::Message(number), Position::Event(number)] {
            assert_eq!(
                decode_position("after", &encode(position), ROOM).ok(),
                Some(position)
            );
        }
    }

    let Ok(cursor) = std::str::from_utf8(data) else {
        return;
    };
    match decode_position("after", cursor, ROOM) {
        Ok(position) => {
            let (Position::Message(number) | Position::Event(number)) = position;
            assert!(number >= 0, "{cursor:?} decoded to a negative {number}");
            // A cursor of version 1 (no room tag) decodes too; it encodes anew with one.
            let tagged = encode(position);
            assert!(
                tagged == cursor || matches!(position, Position::Message(_)),
                "{cursor:?} decoded to {position:?}, which encodes as {tagged:?}"
            );
        }
        Err(error) => {
            assert_eq!(error.code(), "BAD_USER_INPUT", "{cursor:?}");
            assert_eq!(error.field(), Some("after"), "{cursor:?}");
        }
    }
});
