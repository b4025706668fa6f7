//! The request body: `application/x-www-form-urlencoded` only, each
//! parameter once (but `resource`), valid escapes and UTF-8, and at most
//! `[limits] max_token_request_bytes`, however it is framed.

use std::time::Duration;

use serde_json::json;

use super::*;

#[tokio::test]
async fn duplicate_parameters_bad_escapes_bad_utf8_and_other_media_types_are_invalid_requests() {
    let w = world(Options::default()).await;
    let client_a = Some(&w.s.pki.client_a);
    let good = certificate_form("svc-tls", &[]);
    const FORM: &str = "application/x-www-form-urlencoded";
    // (reason, body, content type; empty for none)
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "form_duplicate_parameter",
            format!("{good}&grant_type=client_credentials"),
            FORM,
        ),
        ("form_duplicate_parameter", format!("{good}&client_id=svc-jwt"), FORM),
        (
            "form_duplicate_parameter",
            format!("{good}&scope=&scope=orders%3Aread"),
            FORM,
        ),
        // The same name, percent-encoded, is the same parameter.
        ("form_duplicate_parameter", format!("{good}&client%5Fid=svc-tls"), FORM),
        ("form_not_utf8", format!("{good}&scope=%FF"), FORM),
        ("form_not_utf8", format!("{good}&scope=%C3%28"), FORM),
        ("form_bad_escape", format!("{good}&scope=%zz"), FORM),
        ("form_bad_escape", format!("{good}&scope=%4"), FORM),
        ("form_content_type", good.clone(), "application/json"),
        ("form_content_type", good.clone(), "text/plain"),
        ("form_content_type", good.clone(), "multipart/form-data; boundary=x"),
        ("form_content_type", good.clone(), ""),
    ];
    for (i, (reason, body, content_type)) in cases.iter().enumerate() {
        let alpn = if i % 2 == 0 { Alpn::Http1 } else { Alpn::H2 };
        let mut req = token_request(alpn, body.clone(), &[]);
        match *content_type {
            "" => req.headers_mut().remove("content-type"),
            t => req.headers_mut().insert("content-type", t.parse().unwrap()),
        };
        w.send(client_a, alpn, req)
            .await
            .refused(400, "invalid_request", reason);
    }
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, &token_errors("invalid_request")), cases.len() as f64);
    assert_eq!(
        rows(&metrics, "bindgate_as_client_auth_failures_total"),
        Vec::<String>::new()
    );

    // A charset parameter is fine, and resource may be repeated (RFC 8707).
    let mut req = token_request(
        Alpn::Http1,
        certificate_form("svc-tls", &[("resource", API), ("resource", OTHER_API)]),
        &[],
    );
    req.headers_mut().insert(
        "content-type",
        "Application/X-WWW-Form-Urlencoded; charset=UTF-8".parse().unwrap(),
    );
    let issued = w.send(client_a, Alpn::Http1, req).await.issued("Bearer", "mtls");
    assert_eq!(issued.claims["aud"], json!([API, OTHER_API]));
}

/// A valid request of `svc-tls` padded with an unknown parameter to exactly `len` bytes.
fn padded_form(len: usize) -> String {
    let base = format!("{}&pad=", certificate_form("svc-tls", &[]));
    assert!(len > base.len());
    format!("{base}{}", "p".repeat(len - base.len()))
}

#[tokio::test]
async fn a_body_over_the_default_64_kib_is_refused_with_413() {
    let w = world(Options::default()).await;
    let client_a = Some(&w.s.pki.client_a);
    let limit = 64 * 1024;
    w.post(Alpn::Http1, client_a, &padded_form(limit), &[])
        .await
        .issued("Bearer", "mtls");
    for alpn in [Alpn::H2, Alpn::Http1] {
        // Over HTTP/1.1 the body is read (and dropped) before the answer, so
        // a client still sending it gets the 413 rather than a reset.
        w.post(alpn, client_a, &padded_form(limit + 1), &[])
            .await
            .refused(413, "invalid_request", "form_too_large");
    }
    // A client waiting for `100 Continue` with a Content-Length over the
    // limit has sent nothing yet: it is answered at once.
    let head = format!(
        "POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        limit + 1
    );
    let addr = w.gw.authorization_server.unwrap();
    let out = w
        .client(client_a, Alpn::Http1)
        .raw(addr, head.as_bytes(), Duration::from_secs(2))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(text.to_ascii_lowercase().contains("cache-control: no-store"), "{text}");
    assert!(text.contains("\"error\":\"invalid_request\""), "{text}");
    let line = w.next_line().await;
    assert_eq!(field(&line, "reason").as_deref(), Some("form_too_large"), "{line}");
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, &token_requests(413)), 3.0, "{metrics}");
}

#[tokio::test]
async fn max_token_request_bytes_bounds_the_body_with_a_length_or_chunked() {
    let w = world(Options {
        limits: vec!["max_token_request_bytes = 1024".into()],
        ..Options::default()
    })
    .await;
    let client_a = Some(&w.s.pki.client_a);
    for alpn in [Alpn::Http1, Alpn::H2] {
        w.post(alpn, client_a, &padded_form(1024), &[])
            .await
            .issued("Bearer", "mtls");
        w.post(alpn, client_a, &padded_form(1025), &[])
            .await
            .refused(413, "invalid_request", "form_too_large");
    }
    // Chunked: no length to refuse up front, so the limit stops the reading.
    let body = padded_form(1025);
    let (first, rest) = body.split_at(600);
    let raw = format!(
        "POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{rest}\r\n0\r\n\r\n",
        first.len(),
        rest.len()
    );
    let addr = w.gw.authorization_server.unwrap();
    let out = w
        .client(client_a, Alpn::Http1)
        .raw(addr, raw.as_bytes(), Duration::from_millis(500))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(text.to_ascii_lowercase().contains("cache-control: no-store"), "{text}");
    assert!(text.contains("\"error\":\"invalid_request\""), "{text}");
    let line = w.next_line().await;
    assert_eq!(field(&line, "reason").as_deref(), Some("form_too_large"), "{line}");
    let metrics = w.metrics().await;
    assert_eq!(sample(&metrics, &token_requests(413)), 3.0, "{metrics}");
    assert_eq!(sample(&metrics, &tokens_issued("mtls")), 2.0, "{metrics}");
}
