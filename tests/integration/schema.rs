//! The committed schema.graphql is what the code serves.

#[test]
fn schema_graphql_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql at the top of the repository");
    let exported = chatroom::graphql::sdl();
    assert!(
        committed == exported,
        "schema.graphql differs from the code: run `cargo run -- print-schema > schema.graphql`"
    );
}
