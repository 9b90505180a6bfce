//! Given the committed records written in schema version 2 (by the build
//! before version 3 changed the payload), when this build reads them, then
//! they upcast into today's `Event`: the new fields read "not recorded".

use restpg_events::{Envelope, Event, GENESIS_HASH, SCHEMA_VERSION};

mod common;

fn fixture() -> Vec<Vec<u8>> {
    common::fixture_records("v2_records.bin")
}

#[test]
fn version_2_records_upcast_into_the_current_payload() {
    let records = fixture();
    assert_eq!(records.len(), 8);
    let mut prev = GENESIS_HASH;
    for (i, bytes) in records.iter().enumerate() {
        let env = Envelope::decode(bytes).expect("decodes");
        assert_eq!(env.schema_version, 2);
        assert_eq!(env.seq, i as u64);
        assert_eq!(env.prev_hash, prev);
        assert_eq!(env.event_id, env.payload.event_id("fixture-run-v2"));
        // re-encoding in version 2 gives back the stored bytes exactly
        assert_eq!(&env.encode(), bytes);
        prev = env.hash;
        match &env.payload {
            Event::RunStarted { settings, seed, .. } => assert_eq!((settings, *seed), (&None, 7)),
            Event::SampleGenerated { finish, response, .. } => {
                assert_eq!(*finish, None);
                assert_eq!(response, "Thanks, see you Monday.");
            }
            _ => {}
        }
    }
    const { assert!(SCHEMA_VERSION > 2) };
}
