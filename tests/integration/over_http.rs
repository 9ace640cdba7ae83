//! GraphQL over HTTP as the GraphQL Foundation's spec has it (media types,
//! status codes, GET and POST), and null propagation as the GraphQL spec
//! has it. The spec's own audit runs in `playground/e2e/clients.spec.ts`;
//! these tests pin each rule on both backends.

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::{
    accounts::api_suite,
    helpers::{Backends, TestApp, WatchedStore, error_code, mongo_store, sqlite_store},
};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// POSTs `body` with `accept`; the status, content type and JSON answer.
async fn post(app: &TestApp, accept: Option<&str>, body: &str) -> (StatusCode, String, Value) {
    let mut request = app
        .http
        .post(app.url("/graphql"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_owned());
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    answer_of(request).await
}

async fn answer_of(request: reqwest::RequestBuilder) -> (StatusCode, String, Value) {
    let response = request.send().await.expect("the app answers");
    let status = response.status();
    let media = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, media, body)
}

async fn each_response_is_in_the_media_type_asked_for(backends: Backends) {
    let app = TestApp::spawn(backends, "http_media_types").await;
    let query = r#"{"query": "{ __typename }"}"#;
    for (accept, media) in [
        (None, "application/json"),
        (Some("application/json"), "application/json"),
        (Some("*/*"), "application/json"),
        (Some(GRAPHQL_RESPONSE), GRAPHQL_RESPONSE),
        (
            Some("application/graphql-response+json, application/json;q=0.9"),
            GRAPHQL_RESPONSE,
        ),
    ] {
        let (status, got, body) = post(&app, accept, query).await;
        assert_eq!(status, StatusCode::OK, "{accept:?}");
        assert!(got.starts_with(media), "{accept:?}: {got}");
        assert!(got.contains("charset=utf-8"), "{got}");
        assert_eq!(body, json!({ "data": { "__typename": "Query" } }));
    }
    let (status, _, body) = post(&app, Some("text/html"), query).await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
}

async fn a_request_that_never_ran_is_a_400_without_data_in_graphql_response_json(
    backends: Backends,
) {
    let app = TestApp::spawn(backends, "http_request_errors").await;
    for body in [
        r#"{"query": "{"}"#,
        r#"{"query": "{ noSuchField }"}"#,
        r#"{"query": "query ($id: ID!) { __typename }", "variables": {"id": null}}"#,
    ] {
        let (status, _, answer) = post(&app, Some(GRAPHQL_RESPONSE), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(answer.get("data").is_none(), "{body}: {answer}");
        assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{body}");

        // The older media type has no such statuses: a 200, errors and all.
        let (status, _, answer) = post(&app, Some("application/json"), body).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{body}");
    }
    // Executed, even though it failed: a 200 with its data.
    let (status, _, answer) = post(
        &app,
        Some(GRAPHQL_RESPONSE),
        r#"{"query": "{ me { username } }"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["data"], Value::Null);
    assert_eq!(error_code(&answer), "UNAUTHENTICATED");
}

async fn malformed_requests_are_refused_with_the_field_at_fault(backends: Backends) {
    let app = TestApp::spawn(backends, "http_malformed").await;
    for (body, field) in [
        (r#"{"query": 1}"#, Some("query")),
        (
            r#"{"query": "{ __typename }", "variables": "x"}"#,
            Some("variables"),
        ),
        (
            r#"{"query": "{ __typename }", "operationName": false}"#,
            Some("operationName"),
        ),
        (
            r#"{"query": "{ __typename }", "extensions": []}"#,
            Some("extensions"),
        ),
        (r#"{"qeury": "{ __typename }"}"#, Some("query")),
        (r#"{ "not JSON"#, None),
        (r#""{ __typename }""#, None),
    ] {
        let (status, _, answer) = post(&app, None, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{body}");
        assert_eq!(
            answer["errors"][0]["extensions"]["field"].as_str(),
            field,
            "{body}"
        );
    }
    // In the client's language, as every error.
    let chinese = app
        .http
        .post(app.url("/graphql"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT_LANGUAGE, "zh-CN")
        .body(r#"{"qeury": "{ __typename }"}"#);
    let (_, _, answer) = answer_of(chinese).await;
    assert_eq!(answer["errors"][0]["message"], "请求中没有查询");
    // A body of another type is what a form of another site can send.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app
            .http
            .post(app.url("/graphql"))
            .body(r#"{"query": "{ __typename }"}"#);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let (status, _, answer) = answer_of(request).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert_eq!(error_code(&answer), "BAD_USER_INPUT");
    }
}

async fn a_get_queries_but_never_mutates(backends: Backends) {
    let app = TestApp::spawn(backends, "http_get").await;
    let get = |query: &str, variables: &str| {
        app.http
            .get(app.url("/graphql"))
            .query(&[("query", query), ("variables", variables)])
            .header(header::ACCEPT, GRAPHQL_RESPONSE)
    };
    let (status, _, answer) = answer_of(get(
        "query ($name: String!) { __type(name: $name) { name } }",
        r#"{"name": "Room"}"#,
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["data"]["__type"]["name"], "Room");

    let email = "get@example.com";
    let mutation = "mutation ($email: String!) { sendEmailCode(email: $email) { expiresIn } }";
    let response = get(mutation, &json!({ "email": email }).to_string())
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[header::ALLOW], "POST");
    assert!(app.mails_to(email).is_empty(), "nothing was sent");
}

/// A case of `tests/fixtures/null_propagation.json`, which
/// `playground/e2e/clients.spec.ts` runs through graphql-js's executor too:
/// the same `data` from both is the spec's rule kept.
#[derive(serde::Deserialize)]
struct NullCase {
    name: String,
    query: String,
    failing: Vec<Value>,
    data: Value,
}

fn null_cases() -> Vec<NullCase> {
    let text = include_str!("../fixtures/null_propagation.json");
    serde_json::from_str(text).expect("the cases parse")
}

/// Every case of the fixture on a server whose store cannot count unread
/// messages nor read a message by its place: the failures a nested field,
/// non-null and nullable, meets here.
async fn failed_fields_are_null_up_to_the_nearest_nullable_position(backends: Backends) {
    let test = "null_propagation";
    let inner = match backends {
        Backends::Embedded => sqlite_store().await.0,
        Backends::MongoRedis | Backends::MongoRedisCluster => mongo_store(test).await,
    };
    let store = WatchedStore::failing(inner, &["unread_counts", "messages_at"]);
    let app = TestApp::spawn_on(backends, test, |_| {}, Some(store)).await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let room = app.group(&ann, "g", &[]).await;
    app.send(&ann, &room, "hi").await;
    let variables = json!({
        "nobody": "nobody",
        "room": room,
        "bob": bob.username,
    });
    for case in null_cases() {
        let answer = app.as_user(&ann, &case.query, variables.clone()).await;
        assert_eq!(answer["data"], case.data, "{}: {answer}", case.name);
        let paths: Vec<&Value> = answer["errors"]
            .as_array()
            .map(|errors| errors.iter().map(|error| &error["path"]).collect())
            .unwrap_or_default();
        assert_eq!(
            paths,
            case.failing.iter().collect::<Vec<_>>(),
            "{}",
            case.name
        );
    }
    // The mutation that did not fail was done, though `data` is null.
    let friends = app
        .as_user(&ann, "{ friends { username } }", json!({}))
        .await;
    assert_eq!(friends["data"]["friends"][0]["username"], "bob");
}

api_suite!(
    each_response_is_in_the_media_type_asked_for,
    a_request_that_never_ran_is_a_400_without_data_in_graphql_response_json,
    malformed_requests_are_refused_with_the_field_at_fault,
    a_get_queries_but_never_mutates,
    failed_fields_are_null_up_to_the_nearest_nullable_position,
);
