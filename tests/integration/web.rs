//! The web client and GraphiQL, served by the server itself: every page and
//! asset from this origin, cached as long as is safe.

use reqwest::{StatusCode, header};

use crate::helpers::{Backends, TestApp, built_web_client};

/// Paths of the scripts and styles a page loads.
fn assets_of(page: &str) -> Vec<String> {
    page.split(['"', '\''])
        .filter(|part| part.starts_with("/assets/"))
        .map(str::to_owned)
        .collect()
}

/// An app serving the web client's build, which `scripts/test` makes.
async fn serving_the_web_client(test: &str) -> TestApp {
    built_web_client();
    TestApp::spawn(Backends::Embedded, test).await
}

#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn the_chat_client_and_graphiql_are_served_from_this_origin() {
    let app = serving_the_web_client("web_pages").await;
    for (path, root) in [("/", "id=\"root\""), ("/graphiql", "id=\"graphiql\"")] {
        let page = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html", "{path}");
        // A page names its assets by hash: it is checked on every visit.
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-cache", "{path}");
        let body = page.text().await.unwrap();
        assert!(body.contains(root), "{path}: {body}");
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path} loads nothing from elsewhere"
        );
        let assets = assets_of(&body);
        assert!(!assets.is_empty(), "{path} loads its assets");
        for asset in assets {
            let answer = app.http.get(app.url(&asset)).send().await.unwrap();
            assert_eq!(answer.status(), StatusCode::OK, "{asset}");
            assert_eq!(
                answer.headers()[header::CACHE_CONTROL],
                "public, max-age=31536000, immutable",
                "{asset}"
            );
        }
    }
}

#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn an_unchanged_file_is_not_sent_again_and_a_large_one_is_compressed() {
    let app = serving_the_web_client("web_caching").await;
    let page = app.http.get(app.url("/")).send().await.unwrap();
    let etag = page.headers()[header::ETAG].clone();
    let again = app
        .http
        .get(app.url("/"))
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.unwrap().is_empty());

    let script = assets_of(&page.text().await.unwrap())
        .into_iter()
        .find(|asset| asset.ends_with(".js"))
        .expect("the page loads a script");
    let compressed = app
        .http
        .get(app.url(&script))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(compressed.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(
        compressed.headers()[header::CONTENT_TYPE],
        "text/javascript"
    );
}

#[tokio::test]
async fn a_missing_asset_is_not_found() {
    let app = TestApp::spawn(Backends::Embedded, "web_missing").await;
    let answer = app
        .http
        .get(app.url("/assets/no-such-file.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
}
