//! Registration, login and profiles through the real endpoint, on the
//! embedded backends and on MongoDB + Redis.

use serde_json::json;

use crate::helpers::{Backends, LOGIN, REGISTER, TestApp, error_code, error_field};

const ME: &str = "{ me { identity username nickname email sex avatar createdAt updatedAt } }";

fn registration(username: &str, email: &str, code: &str) -> serde_json::Value {
    json!({ "input": {
        "username": username, "password": "a good password", "email": email, "code": code
    }})
}

async fn a_new_user_registers_logs_in_and_edits_their_profile(backends: Backends) {
    let app = TestApp::spawn(backends, "register_flow").await;

    let sent = app.send_email_code("Carol@Example.com").await;
    assert_eq!(
        sent["data"]["sendEmailCode"],
        json!({ "expiresIn": 300, "resendAfter": 60 })
    );
    let code = app.read_code("carol@example.com");
    let registered = app
        .anonymous(
            REGISTER,
            registration("Carol_1", "Carol@Example.com", &code),
        )
        .await;
    let user = &registered["data"]["register"]["user"];
    assert_eq!(user["username"], "Carol_1");
    assert_eq!(
        user["nickname"], "Carol_1",
        "the nickname defaults to the username"
    );
    assert_eq!(user["email"], "carol@example.com", "stored lower-case");
    assert_eq!(user["sex"], "UNKNOWN");

    let logged_in = app.login("CAROL_1", "a good password").await;
    let token = logged_in["data"]["login"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        logged_in["data"]["login"]["user"]["identity"],
        user["identity"]
    );

    let me = app.request(Some(&token), &[], ME, json!({})).await;
    assert_eq!(me["data"]["me"]["username"], "Carol_1");
    assert_eq!(me["data"]["me"]["email"], "carol@example.com");

    let updated = app
        .request(
            Some(&token),
            &[],
            "mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { nickname sex avatar updatedAt createdAt } }",
            json!({ "input": { "nickname": "卡罗尔", "sex": "FEMALE", "avatar": "https://example.com/c.png" } }),
        )
        .await;
    let profile = &updated["data"]["updateProfile"];
    assert_eq!(profile["nickname"], "卡罗尔");
    assert_eq!(profile["sex"], "FEMALE");
    assert_eq!(profile["avatar"], "https://example.com/c.png");
    assert!(profile["updatedAt"].as_str() >= profile["createdAt"].as_str());

    let cleared = app
        .request(
            Some(&token),
            &[],
            "mutation { updateProfile(input: { avatar: null }) { nickname avatar } }",
            json!({}),
        )
        .await;
    assert_eq!(
        cleared["data"]["updateProfile"],
        json!({ "nickname": "卡罗尔", "avatar": null })
    );
    let me = app.request(Some(&token), &[], ME, json!({})).await;
    assert_eq!(me["data"]["me"]["sex"], "FEMALE");
}

async fn timestamps_are_rfc3339_utc_with_milliseconds(backends: Backends) {
    let app = TestApp::spawn(backends, "timestamps").await;
    let dave = app.register("dave").await;
    let me = app.as_user(&dave, ME, json!({})).await;
    let created = me["data"]["me"]["createdAt"].as_str().unwrap();
    assert_eq!(created.len(), "2026-11-26T19:41:14.123Z".len(), "{created}");
    assert!(created.ends_with('Z'), "{created}");
    assert!(chrono::DateTime::parse_from_rfc3339(created).is_ok());
}

async fn a_wrong_code_is_invalid_and_five_wrong_tries_void_the_code(backends: Backends) {
    let app = TestApp::spawn(backends, "wrong_code").await;
    app.send_email_code("erin@example.com").await;
    let code = app.read_code("erin@example.com");
    let wrong = if code == "000000" { "111111" } else { "000000" };

    for _ in 0..5 {
        let answer = app
            .anonymous(REGISTER, registration("erin", "erin@example.com", wrong))
            .await;
        assert_eq!(error_code(&answer), "INVALID_CODE");
    }
    let answer = app
        .anonymous(REGISTER, registration("erin", "erin@example.com", &code))
        .await;
    assert_eq!(
        error_code(&answer),
        "INVALID_CODE",
        "the right code after 5 wrong tries"
    );
}

async fn an_expired_code_is_invalid(backends: Backends) {
    let app = TestApp::spawn_with(backends, "expired_code", |c| c.code_ttl_secs = 1).await;
    app.send_email_code("fay@example.com").await;
    let code = app.read_code("fay@example.com");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let answer = app
        .anonymous(REGISTER, registration("fay", "fay@example.com", &code))
        .await;
    assert_eq!(error_code(&answer), "INVALID_CODE");
}

async fn a_code_is_usable_once_even_by_concurrent_registrations(backends: Backends) {
    let app = TestApp::spawn(backends, "code_once").await;
    app.send_email_code("gus@example.com").await;
    let code = app.read_code("gus@example.com");

    let attempts = (0..5).map(|i| {
        app.anonymous(
            REGISTER,
            registration(&format!("gus{i}"), "gus@example.com", &code),
        )
    });
    let answers = futures_util::future::join_all(attempts).await;
    let succeeded = answers.iter().filter(|a| a["errors"].is_null()).count();
    assert_eq!(succeeded, 1, "{answers:?}");
    for answer in answers.iter().filter(|a| !a["errors"].is_null()) {
        assert!(
            matches!(error_code(answer), "INVALID_CODE" | "CONFLICT"),
            "{answer}"
        );
    }
    let reused = app
        .anonymous(
            REGISTER,
            registration("gus_again", "gus@example.com", &code),
        )
        .await;
    assert!(
        matches!(error_code(&reused), "INVALID_CODE" | "CONFLICT"),
        "{reused}"
    );
}

async fn a_second_code_within_a_minute_is_rate_limited(backends: Backends) {
    let app = TestApp::spawn(backends, "resend").await;
    app.send_email_code("hal@example.com").await;
    let again = app.send_email_code("HAL@example.com").await;
    assert_eq!(error_code(&again), "RATE_LIMITED");
    let retry_after = again["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");

    let other = app.send_email_code("ida@example.com").await;
    assert!(
        other["errors"].is_null(),
        "another address is not limited: {other}"
    );
}

async fn taken_usernames_and_emails_are_conflicts_that_keep_the_code(backends: Backends) {
    let app = TestApp::spawn(backends, "conflicts").await;
    let jan = app.register("Jan").await;

    let code_to_registered = app.send_email_code(&jan.email).await;
    assert_eq!(error_code(&code_to_registered), "CONFLICT");
    assert_eq!(error_field(&code_to_registered), "email");

    app.send_email_code("kim@example.com").await;
    let code = app.read_code("kim@example.com");
    let taken = app
        .anonymous(REGISTER, registration("jAN", "kim@example.com", &code))
        .await;
    assert_eq!(error_code(&taken), "CONFLICT");
    assert_eq!(error_field(&taken), "username");

    let registered = app
        .anonymous(REGISTER, registration("kim", "kim@example.com", &code))
        .await;
    assert!(
        registered["errors"].is_null(),
        "the code survived the conflict: {registered}"
    );
}

async fn every_invalid_field_is_named(backends: Backends) {
    let app = TestApp::spawn(backends, "invalid_fields").await;
    app.send_email_code("lea@example.com").await;
    let code = app.read_code("lea@example.com");
    let valid = json!({
        "username": "lea", "password": "a good password", "email": "lea@example.com", "code": code
    });
    let cases = [
        ("username", json!("ab")),
        ("username", json!("a".repeat(21))),
        ("username", json!("no spaces")),
        ("password", json!("short")),
        ("password", json!("x".repeat(129))),
        ("email", json!("not-an-email")),
        ("code", json!("12ab56")),
        ("nickname", json!("")),
        ("nickname", json!("   ")),
        ("nickname", json!("n".repeat(33))),
        ("avatar", json!("ftp://example.com/a.png")),
        (
            "avatar",
            json!(format!("https://example.com/{}", "a".repeat(500))),
        ),
    ];
    for (field, value) in cases {
        let mut input = valid.clone();
        input[field] = value.clone();
        let answer = app.anonymous(REGISTER, json!({ "input": input })).await;
        assert_eq!(
            error_code(&answer),
            "BAD_USER_INPUT",
            "{field} = {value}: {answer}"
        );
        assert_eq!(error_field(&answer), field, "{field} = {value}");
    }
    let registered = app.anonymous(REGISTER, json!({ "input": valid })).await;
    assert!(
        registered["errors"].is_null(),
        "invalid tries spent nothing: {registered}"
    );

    let lea = crate::helpers::Account {
        username: "lea".into(),
        email: "lea@example.com".into(),
        password: "a good password".into(),
        token: registered["data"]["register"]["token"]
            .as_str()
            .unwrap()
            .into(),
        identity: String::new(),
    };
    for (field, value) in [
        ("nickname", json!("")),
        ("avatar", json!("javascript:alert(1)")),
    ] {
        let answer = app
            .as_user(
                &lea,
                "mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { nickname } }",
                json!({ "input": { field: value } }),
            )
            .await;
        assert_eq!(error_code(&answer), "BAD_USER_INPUT");
        assert_eq!(error_field(&answer), field);
    }
}

async fn wrong_passwords_and_unknown_users_get_the_same_answer(backends: Backends) {
    let app = TestApp::spawn(backends, "wrong_password").await;
    let max = app.register("max").await;
    let right = app.login(&max.username, &max.password).await;
    assert!(right["errors"].is_null(), "{right}");
    let wrong = app.login(&max.username, "not the password").await;
    let unknown = app.login("nobody", "not the password").await;
    assert_eq!(error_code(&wrong), "UNAUTHENTICATED");
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    assert_eq!(
        wrong["errors"][0]["extensions"],
        unknown["errors"][0]["extensions"]
    );
    assert!(wrong["data"].is_null());
}

async fn errors_speak_chinese_when_the_client_prefers_it(backends: Backends) {
    let app = TestApp::spawn(backends, "chinese").await;
    let answer = app
        .request(
            None,
            &[("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.8")],
            LOGIN,
            json!({ "username": "nobody", "password": "whatever1" }),
        )
        .await;
    assert_eq!(error_code(&answer), "UNAUTHENTICATED");
    assert_eq!(answer["errors"][0]["message"], "用户名或密码错误");

    let english = app.login("nobody", "whatever1").await;
    assert_eq!(
        english["errors"][0]["message"],
        "wrong username or password"
    );
}

/// Found by fuzzing (fuzz target `values`): a `q=nan` among enough entries
/// made the header parser's sort panic, so the request got no answer at all.
async fn a_malformed_accept_language_header_still_gets_an_english_answer(backends: Backends) {
    let app = TestApp::spawn(backends, "bad_accept_language").await;
    let answer = app
        .request(
            None,
            &[("Accept-Language", ",0,;,,;=nan,,,,,,,,,,,,,,,,,")],
            LOGIN,
            json!({ "username": "nobody", "password": "whatever1" }),
        )
        .await;
    assert_eq!(error_code(&answer), "UNAUTHENTICATED");
    assert_eq!(answer["errors"][0]["message"], "wrong username or password");
}

/// Runs each behaviour over the embedded backends and over MongoDB + Redis.
macro_rules! api_suite {
    ($($behaviour:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    super::$behaviour(crate::helpers::Backends::Embedded).await;
                }
            )*
        }
        mod mongo_redis {
            $(
                #[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
                #[tokio::test]
                async fn $behaviour() {
                    super::$behaviour(crate::helpers::Backends::MongoRedis).await;
                }
            )*
        }
    };
}

pub(crate) use api_suite;

/// Runs each behaviour over MongoDB with one Redis and with a Redis
/// Cluster: what crosses instances.
macro_rules! shared_suite {
    ($($behaviour:ident),* $(,)?) => {
        mod mongo_redis {
            $(
                #[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
                #[tokio::test]
                async fn $behaviour() {
                    super::$behaviour(crate::helpers::Backends::MongoRedis).await;
                }
            )*
        }
        crate::accounts::cluster_suite!($($behaviour),*);
    };
}

pub(crate) use shared_suite;

/// Runs each behaviour over MongoDB and a Redis Cluster, beside the
/// [`api_suite`] or [`shared_suite`] run on one Redis.
macro_rules! cluster_suite {
    ($($behaviour:ident),* $(,)?) => {
        mod mongo_redis_cluster {
            $(
                #[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
                #[tokio::test]
                async fn $behaviour() {
                    super::$behaviour(crate::helpers::Backends::MongoRedisCluster).await;
                }
            )*
        }
    };
}

pub(crate) use cluster_suite;

api_suite!(
    a_new_user_registers_logs_in_and_edits_their_profile,
    timestamps_are_rfc3339_utc_with_milliseconds,
    a_wrong_code_is_invalid_and_five_wrong_tries_void_the_code,
    an_expired_code_is_invalid,
    a_code_is_usable_once_even_by_concurrent_registrations,
    a_second_code_within_a_minute_is_rate_limited,
    taken_usernames_and_emails_are_conflicts_that_keep_the_code,
    every_invalid_field_is_named,
    wrong_passwords_and_unknown_users_get_the_same_answer,
    errors_speak_chinese_when_the_client_prefers_it,
    a_malformed_accept_language_header_still_gets_an_english_answer,
);

/// A mail server of the test's own, just enough SMTP to take one message.
async fn smtp_sink() -> (u16, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
        let mut data = String::new();
        let mut in_data = false;
        while let Ok(Some(line)) = lines.next_line().await {
            if in_data {
                if line == "." {
                    // One message is all a test needs; the client may keep
                    // the connection for more (lettre pools them).
                    write.write_all(b"250 queued\r\n").await.unwrap();
                    break;
                } else {
                    data.push_str(&line);
                    data.push('\n');
                }
                continue;
            }
            let verb = line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" | "HELO" => b"250 sink\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go on\r\n"
                }
                "QUIT" => {
                    write.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                }
                _ => b"250 ok\r\n",
            };
            write.write_all(reply).await.unwrap();
        }
        data
    });
    (port, sink)
}

#[tokio::test]
async fn codes_go_out_through_smtp_when_it_is_configured() {
    let (port, sink) = smtp_sink().await;
    let app = TestApp::spawn_with(Backends::Embedded, "smtp", |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
    })
    .await;
    let sent = app.send_email_code("zoe@example.com").await;
    assert!(sent["errors"].is_null(), "{sent}");
    let mail = tokio::time::timeout(std::time::Duration::from_secs(10), sink)
        .await
        .expect("the mail within 10 s")
        .unwrap();
    let message = mail_parser::MessageParser::default()
        .parse(mail.as_bytes())
        .expect("a well-formed mail");
    let body = message.body_text(0).expect("a text body");
    let code = crate::helpers::extract_code(&body).expect("a code in the mail");
    assert!(
        body.contains("验证码") && body.contains("valid for 5 minutes"),
        "{body}"
    );
    assert!(
        std::fs::read_dir(&app.outbox).map_or(true, |mut d| d.next().is_none()),
        "nothing in the outbox"
    );
    let registered = app
        .anonymous(REGISTER, registration("zoe", "zoe@example.com", &code))
        .await;
    assert!(registered["errors"].is_null(), "{registered}");
}
