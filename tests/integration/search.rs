//! `searchMessages` through the API (API.md, "Search"): what matches in
//! English, Chinese and Japanese, whose rooms are searched, the pages, and
//! the bounds on a query, over every backend.

use serde_json::{Value, json};

use crate::{
    accounts::api_suite,
    helpers::{Account, Backends, TestApp, error_code, error_field},
};

const SEARCH: &str = "query($q: String!, $r: ID, $first: Int, $after: String) {
    searchMessages(query: $q, roomIdentity: $r, first: $first, after: $after) {
        edges { cursor node { identity roomIdentity content } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
}";

const EDIT: &str = "mutation($m: ID!, $c: String!) { editMessage(messageIdentity: $m, content: $c) \
                    { identity } }";
const DELETE: &str = "mutation($m: ID!) { deleteMessage(messageIdentity: $m) { identity } }";
const LEAVE: &str = "mutation($r: ID!) { leaveRoom(roomIdentity: $r) }";

/// Sends `content` to `room` as `sender`; the message's identity.
async fn sent(app: &TestApp, sender: &Account, room: &str, content: &str) -> String {
    let answer = app.send(sender, room, content).await;
    answer["data"]["sendMessage"]["identity"]
        .as_str()
        .unwrap_or_else(|| panic!("sendMessage failed: {answer}"))
        .to_owned()
}

/// The answer to a search by `who`.
async fn search(app: &TestApp, who: &Account, variables: Value) -> Value {
    app.as_user(who, SEARCH, variables).await
}

/// The contents `who` finds for `query` (everywhere, first 100), newest first.
async fn found(app: &TestApp, who: &Account, query: &str) -> Vec<String> {
    let answer = search(app, who, json!({ "q": query, "first": 100 })).await;
    contents(&answer)
}

fn contents(answer: &Value) -> Vec<String> {
    answer["data"]["searchMessages"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("searchMessages failed: {answer}"))
        .iter()
        .map(|edge| {
            edge["node"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// Two people in a group; the app, them, and the room.
async fn pair_in_group(backends: Backends, test: &str) -> (TestApp, Account, Account, String) {
    let app = TestApp::spawn(backends, test).await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let room = app.group(&ann, "tea", &[&bob]).await;
    (app, ann, bob, room)
}

async fn each_word_matches_the_beginning_of_a_word_ignoring_case(backends: Backends) {
    let (app, ann, bob, room) = pair_in_group(backends, "search_words").await;
    for content in [
        "Hello world",
        "yellow submarine",
        "hello there, General",
        "Say HELLO to the ｗｏｒｌｄ",
        "nothing to see",
    ] {
        sent(&app, &bob, &room, content).await;
    }

    assert_eq!(
        found(&app, &ann, "hel").await,
        [
            "Say HELLO to the ｗｏｒｌｄ",
            "hello there, General",
            "Hello world"
        ],
        "newest first"
    );
    assert!(
        found(&app, &ann, "ello").await.is_empty(),
        "not the middle of a word"
    );
    assert_eq!(
        found(&app, &ann, "WORLD Hel").await,
        ["Say HELLO to the ｗｏｒｌｄ", "Hello world"]
    );
    assert_eq!(
        found(&app, &ann, "hello gen").await,
        ["hello there, General"]
    );
    assert!(
        found(&app, &ann, "hello submarine").await.is_empty(),
        "every word must match"
    );
    assert_eq!(found(&app, &ann, "  sub?  ").await, ["yellow submarine"]);
}

async fn chinese_and_japanese_match_by_characters_among_english(backends: Backends) {
    let (app, ann, bob, room) = pair_in_group(backends, "search_cjk").await;
    for content in [
        "我们说中文吧",
        "Let's speak English, 好吗?",
        "東京タワーへ行こう! Tokyo tower",
        "中 文 apart",
        "中国人 and 日本人",
    ] {
        sent(&app, &bob, &room, content).await;
    }

    assert_eq!(found(&app, &ann, "中文").await, ["我们说中文吧"]);
    assert_eq!(found(&app, &ann, "说中").await, ["我们说中文吧"]);
    assert!(found(&app, &ann, "文中").await.is_empty());
    assert_eq!(
        found(&app, &ann, "中").await,
        ["中国人 and 日本人", "中 文 apart", "我们说中文吧"]
    );
    assert_eq!(
        found(&app, &ann, "タワー").await,
        ["東京タワーへ行こう! Tokyo tower"]
    );
    assert_eq!(
        found(&app, &ann, "東京 tok").await,
        ["東京タワーへ行こう! Tokyo tower"],
        "characters and words together"
    );
    assert!(
        found(&app, &ann, "东京").await.is_empty(),
        "characters as written: simplified is not traditional"
    );
    assert_eq!(
        found(&app, &ann, "english 好吗").await,
        ["Let's speak English, 好吗?"]
    );
    assert_eq!(found(&app, &ann, "本人").await, ["中国人 and 日本人"]);
}

async fn edits_are_found_by_their_new_words_and_deleted_messages_never(backends: Backends) {
    let (app, ann, bob, room) = pair_in_group(backends, "search_edits").await;
    let edited = sent(&app, &bob, &room, "meet at the station 车站").await;
    let deleted = sent(&app, &bob, &room, "the secret password is hunter2").await;
    sent(&app, &bob, &room, "see you at the station").await;

    let answer = app
        .as_user(
            &bob,
            EDIT,
            json!({ "m": edited, "c": "meet at the airport 机场" }),
        )
        .await;
    assert!(answer["errors"].is_null(), "{answer}");
    let answer = app.as_user(&bob, DELETE, json!({ "m": deleted })).await;
    assert!(answer["errors"].is_null(), "{answer}");

    assert_eq!(
        found(&app, &ann, "station").await,
        ["see you at the station"]
    );
    assert!(found(&app, &ann, "车站").await.is_empty());
    assert_eq!(
        found(&app, &ann, "airport").await,
        ["meet at the airport 机场"]
    );
    assert_eq!(
        found(&app, &ann, "机场").await,
        ["meet at the airport 机场"]
    );
    assert!(found(&app, &ann, "secret").await.is_empty());
    assert!(found(&app, &ann, "hunter2").await.is_empty());
    assert_eq!(
        found(&app, &ann, "the").await,
        ["see you at the station", "meet at the airport 机场"],
        "the deleted message stays out among others"
    );
}

async fn only_rooms_the_viewer_belongs_to_now_are_searched(backends: Backends) {
    let app = TestApp::spawn(backends, "search_rooms").await;
    let (ann, bob, cat) = (
        app.register("ann").await,
        app.register("bob").await,
        app.register("cat").await,
    );
    let tea = app.group(&ann, "tea", &[&bob, &cat]).await;
    let pair = app.befriend(&ann, &bob).await;
    let secret = app.group(&bob, "secret", &[&cat]).await;
    sent(&app, &bob, &tea, "lunch in the tea room").await;
    sent(&app, &bob, &pair, "lunch just us two").await;
    sent(&app, &cat, &secret, "lunch without ann").await;

    assert_eq!(
        found(&app, &ann, "lunch").await,
        ["lunch just us two", "lunch in the tea room"]
    );
    assert_eq!(found(&app, &cat, "lunch").await.len(), 2);
    let left = app.as_user(&ann, LEAVE, json!({ "r": tea })).await;
    assert!(left["errors"].is_null(), "{left}");
    assert_eq!(found(&app, &ann, "lunch").await, ["lunch just us two"]);
}

async fn a_room_filter_searches_that_room_and_refuses_others(backends: Backends) {
    let app = TestApp::spawn(backends, "search_filter").await;
    let (ann, bob, cat) = (
        app.register("ann").await,
        app.register("bob").await,
        app.register("cat").await,
    );
    let tea = app.group(&ann, "tea", &[&bob]).await;
    let coffee = app.group(&ann, "coffee", &[&bob]).await;
    let secret = app.group(&bob, "secret", &[&cat]).await;
    sent(&app, &bob, &tea, "cake in tea").await;
    sent(&app, &bob, &coffee, "cake in coffee").await;

    let answer = search(&app, &ann, json!({ "q": "cake", "r": tea })).await;
    assert_eq!(contents(&answer), ["cake in tea"]);
    let refused = search(&app, &ann, json!({ "q": "cake", "r": secret })).await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    let unknown = uuid::Uuid::new_v4().to_string();
    let missing = search(&app, &ann, json!({ "q": "cake", "r": unknown })).await;
    assert_eq!(error_code(&missing), "NOT_FOUND", "{missing}");
    let garbled = search(&app, &ann, json!({ "q": "cake", "r": "no-such-room" })).await;
    assert_eq!(error_code(&garbled), "NOT_FOUND", "{garbled}");
}

async fn pages_run_newest_first_without_gaps_or_repeats(backends: Backends) {
    let (app, ann, bob, room) = pair_in_group(backends, "search_pages").await;
    let mut expected = Vec::new();
    for n in 1..=23 {
        sent(&app, &bob, &room, &format!("round {n} 回合")).await;
        if n % 4 == 0 {
            sent(&app, &ann, &room, "something else").await;
        }
        expected.push(format!("round {n} 回合"));
    }
    expected.reverse();

    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let answer = search(
            &app,
            &ann,
            json!({ "q": "回合 ROUND", "first": 10, "after": after }),
        )
        .await;
        let page = &answer["data"]["searchMessages"];
        let edges = page["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"));
        assert_eq!(page["pageInfo"]["hasPreviousPage"], pages > 0, "{answer}");
        assert_eq!(page["pageInfo"]["startCursor"], edges[0]["cursor"]);
        assert_eq!(
            page["pageInfo"]["endCursor"],
            edges[edges.len() - 1]["cursor"]
        );
        seen.extend(contents(&answer));
        pages += 1;
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }

    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    let default = search(&app, &ann, json!({ "q": "round" })).await;
    assert_eq!(contents(&default).len(), 20, "twenty by default");
}

async fn a_page_goes_on_after_its_last_message_is_deleted(backends: Backends) {
    let (app, ann, bob, room) = pair_in_group(backends, "search_page_delete").await;
    let mut identities = Vec::new();
    for n in 1..=4 {
        identities.push(sent(&app, &bob, &room, &format!("step {n}")).await);
    }
    let first = search(&app, &ann, json!({ "q": "step", "first": 2 })).await;
    assert_eq!(contents(&first), ["step 4", "step 3"]);

    let answer = app
        .as_user(&bob, DELETE, json!({ "m": identities[2] }))
        .await;
    assert!(answer["errors"].is_null(), "{answer}");
    let after = &first["data"]["searchMessages"]["pageInfo"]["endCursor"];
    let next = search(
        &app,
        &ann,
        json!({ "q": "step", "first": 2, "after": after }),
    )
    .await;

    assert_eq!(contents(&next), ["step 2", "step 1"]);
    assert_eq!(
        next["data"]["searchMessages"]["pageInfo"]["hasNextPage"],
        false
    );
}

async fn bad_queries_pages_and_cursors_are_bad_user_input(backends: Backends) {
    let (app, ann, bob, room) = pair_in_group(backends, "search_bad_input").await;
    sent(&app, &bob, &room, "hello").await;
    let history = app
        .as_user(
            &ann,
            "query($r: ID!) { messages(roomIdentity: $r, last: 1) { edges { cursor } } }",
            json!({ "r": room }),
        )
        .await;
    let message_cursor = &history["data"]["messages"]["edges"][0]["cursor"];

    let refused = [
        (json!({ "q": "" }), "query"),
        (json!({ "q": "  ?! ... —— 。" }), "query"),
        (json!({ "q": "a".repeat(201) }), "query"),
        (json!({ "q": "a b c d e f g h i j k" }), "query"),
        (json!({ "q": "hello", "first": 0 }), "first"),
        (json!({ "q": "hello", "first": 101 }), "first"),
        (json!({ "q": "hello", "after": "nonsense" }), "after"),
        (json!({ "q": "hello", "after": message_cursor }), "after"),
    ];
    for (variables, field) in refused {
        let answer = search(&app, &ann, variables.clone()).await;
        assert_eq!(
            error_code(&answer),
            "BAD_USER_INPUT",
            "{variables}: {answer}"
        );
        assert_eq!(error_field(&answer), field, "{variables}: {answer}");
    }
    let anonymous = app.anonymous(SEARCH, json!({ "q": "hello" })).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
}

async fn searching_is_rate_limited_per_user(backends: Backends) {
    let app = TestApp::spawn_with(backends, "search_rate", |config| {
        config.rates.search_burst = 3;
        config.rates.searches_per_second = 1;
    })
    .await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);

    for _ in 0..3 {
        let answer = search(&app, &ann, json!({ "q": "anything" })).await;
        assert!(answer["errors"].is_null(), "{answer}");
    }
    let refused = search(&app, &ann, json!({ "q": "anything" })).await;

    assert_eq!(error_code(&refused), "RATE_LIMITED", "{refused}");
    let other = search(&app, &bob, json!({ "q": "anything" })).await;
    assert!(
        other["errors"].is_null(),
        "another user is not limited: {other}"
    );
}

async fn aliases_of_a_search_count_one_each(backends: Backends) {
    let app = TestApp::spawn_with(backends, "search_aliases", |config| {
        let defaults = chatroom::config::RateLimits::default();
        config.rates.search_burst = defaults.search_burst;
        config.rates.searches_per_second = defaults.searches_per_second;
    })
    .await;
    let ann = app.register("ann").await;
    let aliases: Vec<String> = (0..25)
        .map(|n| {
            format!("s{n}: searchMessages(query: \"x\", first: 1) {{ pageInfo {{ hasNextPage }} }}")
        })
        .collect();

    let answer = app
        .as_user(&ann, &format!("{{ {} }}", aliases.join(" ")), json!({}))
        .await;

    let limited = answer["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .filter(|error| error["extensions"]["code"] == "RATE_LIMITED")
        .count();
    assert_eq!(limited, 5, "a burst of 20, then the rate: {answer}");
}

api_suite!(
    each_word_matches_the_beginning_of_a_word_ignoring_case,
    chinese_and_japanese_match_by_characters_among_english,
    edits_are_found_by_their_new_words_and_deleted_messages_never,
    only_rooms_the_viewer_belongs_to_now_are_searched,
    a_room_filter_searches_that_room_and_refuses_others,
    pages_run_newest_first_without_gaps_or_repeats,
    a_page_goes_on_after_its_last_message_is_deleted,
    bad_queries_pages_and_cursors_are_bad_user_input,
    searching_is_rate_limited_per_user,
    aliases_of_a_search_count_one_each,
);
