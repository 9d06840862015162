//! Every error a client can provoke answers the JSON error shape
//! `{"error": {"code", "message"}}`, including the ones axum produces before a
//! handler runs (bad path and query values, a wrong method, an oversized upload).

use crate::support;

use axum::http::{Method, StatusCode};
use serde_json::json;

fn code(j: &serde_json::Value) -> &str {
    j["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not the JSON error shape: {j}"))
}

#[tokio::test]
async fn rejections_answer_the_json_error_shape() {
    let app = support::TestApp::sqlite().await;
    let (s, _) = app.post("/v1/banks", json!({"name": "b"})).await;
    assert_eq!(s, StatusCode::CREATED);

    // A path value of the wrong type.
    let (s, j) = app.get("/v1/banks/b/content/not-a-number").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&j), "bad_request");
    assert!(!j["error"]["message"].as_str().unwrap().is_empty());

    // A query value of the wrong type.
    let (s, j) = app.get("/v1/banks/b/content?limit=many").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&j), "bad_request");

    // A method the route does not have keeps its Allow header.
    let req = axum::http::Request::builder()
        .method(Method::DELETE)
        .uri("/v1/health")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(app.router.clone(), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = resp.headers().get("allow").cloned();
    assert!(allow.is_some_and(|a| a.to_str().unwrap().contains("GET")));
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code(&j), "method_not_allowed");

    // An upload over max_upload_bytes (8 MiB in tests) is `too_large`, not `bad_upload`.
    let big = vec![0u8; 9 << 20];
    let (s, j) = app.upload("/v1/hash", &app.admin, &big, &[]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{j}");
    assert_eq!(code(&j), "too_large");

    // Unknown routes, as before.
    let (s, j) = app.get("/v1/nothing-here").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(code(&j), "not_found");
}
