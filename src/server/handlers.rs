//! HTTP handlers: the webhook endpoints, health, and metrics. Reading and answering only; the decision
//! is the admission module's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use time::OffsetDateTime;

use super::App;
use crate::admission::{self, Endpoint, Prepared, Reviewed};

/// The largest review body read; a bigger one gets 413 without being read.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// What is kept back from the API server's `?timeout=` so that the answer arrives before it gives up.
const TIMEOUT_MARGIN: Duration = Duration::from_millis(200);
/// The API server's default webhook timeout, used when the request names none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS port's routes.
pub fn webhook_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/validate", post(validate_handler))
        .route("/mutate", post(mutate_handler))
        .route("/healthz", get(healthz_handler))
        .route("/readyz", get(readyz_handler))
        .method_not_allowed_fallback(method_not_allowed_handler)
        .fallback(not_found_handler)
        .with_state(app)
}

/// The metrics port's routes.
pub fn metrics_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz_handler))
        .route("/readyz", get(readyz_handler))
        .method_not_allowed_fallback(method_not_allowed_handler)
        .fallback(not_found_handler)
        .with_state(app)
}

/// How much of an unread body a refusal reads and discards, so that a small request's connection stays
/// open for the next one; a larger body is left unread and its connection closes (gracefully, see
/// `listener::Linger`).
const DISCARD_MAX_BYTES: usize = 64 * 1024;
/// How long a refusal waits for the body it discards.
const DISCARD_WAIT: Duration = Duration::from_millis(500);

/// Reads and discards a refused request's body, within `DISCARD_MAX_BYTES` and `DISCARD_WAIT`; whether it
/// was read to its end.
async fn discard(body: Body) -> bool {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut read = 0;
    tokio::time::timeout(DISCARD_WAIT, async {
        while read <= DISCARD_MAX_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                Some(Err(_)) => return false,
                None => return true,
            }
        }
        false
    })
    .await
    .unwrap_or(false)
}

/// A refusal whose request body was left (partly) unread: over HTTP/1.1 the connection cannot carry another
/// request, and `Connection: close` says so, so that the client sends its next request elsewhere instead of
/// on a connection that is closing. (HTTP/2 resets the stream instead; the connection stays.)
fn closing(mut response: Response, version: axum::http::Version) -> Response {
    if version < axum::http::Version::HTTP_2 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Discards the body of a refused request, then answers with `response`, closing when the body was too
/// large or too slow to discard.
async fn refuse_after(request: Request, response: Response) -> Response {
    let version = request.version();
    if discard(request.into_body()).await {
        response
    } else {
        closing(response, version)
    }
}

/// A one-line plain-text answer for a request that is not a readable review, counted by reason.
fn refuse(
    app: &App,
    status: StatusCode,
    reason: &'static str,
    message: impl std::fmt::Display,
) -> Response {
    app.metrics.record_bad_request(reason);
    let mut line = message.to_string().replace('\n', " ");
    line.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        line,
    )
        .into_response()
}

async fn not_found_handler(State(app): State<Arc<App>>, request: Request) -> Response {
    let response = refuse(
        &app,
        StatusCode::NOT_FOUND,
        "not-found",
        "not found; the webhook paths are /validate and /mutate",
    );
    refuse_after(request, response).await
}

async fn method_not_allowed_handler(State(app): State<Arc<App>>, request: Request) -> Response {
    let response = refuse(
        &app,
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "method not allowed",
    );
    refuse_after(request, response).await
}

async fn healthz_handler() -> &'static str {
    "ok\n"
}

async fn readyz_handler(State(app): State<Arc<App>>) -> Response {
    match app.not_ready_because() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn metrics_handler(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        app.metrics.encode(),
    )
        .into_response()
}

async fn validate_handler(State(app): State<Arc<App>>, request: Request) -> Response {
    review_handler(app, request, Endpoint::Validate).await
}

async fn mutate_handler(State(app): State<Arc<App>>, request: Request) -> Response {
    review_handler(app, request, Endpoint::Mutate).await
}

/// The API server's `?timeout=10s`, less a margin; the default when absent or unreadable.
fn request_timeout(query: Option<&str>) -> Duration {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("timeout="))
        .and_then(|t| super::parse_duration(t).ok())
        .unwrap_or(DEFAULT_TIMEOUT)
        .saturating_sub(TIMEOUT_MARGIN)
        .max(Duration::from_millis(100))
}

fn is_json(value: Option<&HeaderValue>) -> bool {
    let Some(media) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = media.split(';').next().unwrap_or_default().trim();
    media.eq_ignore_ascii_case("application/json")
}

async fn review_handler(app: Arc<App>, request: Request, endpoint: Endpoint) -> Response {
    let started = Instant::now();
    // Shed load rather than queue without bound: the API server retries another replica or applies the
    // failurePolicy, either of which beats a review that waits past its timeout.
    let Ok(_permit) = app.in_flight.clone().try_acquire_owned() else {
        let response = refuse(
            &app,
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many reviews in flight; try again",
        );
        return refuse_after(request, response).await;
    };
    if !is_json(request.headers().get(header::CONTENT_TYPE)) {
        let response = refuse(
            &app,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "content type must be application/json",
        );
        return refuse_after(request, response).await;
    }
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        // Not read at all: the connection closes after the answer (gracefully; see `listener::Linger`).
        let response = refuse(
            &app,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "body is larger than 3 MiB",
        );
        return closing(response, parts.version);
    }
    let deadline = request_timeout(parts.uri.query());
    let body = match tokio::time::timeout(
        deadline,
        axum::body::to_bytes(Body::new(body), MAX_BODY_BYTES),
    )
    .await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return if too_large {
                let response = refuse(
                    &app,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-large",
                    "body is larger than 3 MiB",
                );
                closing(response, parts.version)
            } else {
                refuse(
                    &app,
                    StatusCode::BAD_REQUEST,
                    "body-read",
                    format!("could not read the body: {e}"),
                )
            };
        }
        Err(_) => {
            return refuse(
                &app,
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "the body did not arrive within the request's timeout",
            );
        }
    };
    let Some(policy) = app.policy.load_full() else {
        return refuse(
            &app,
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "no valid policy is loaded",
        );
    };
    let prepared = match admission::prepare(
        &policy,
        &body,
        OffsetDateTime::now_utc(),
        endpoint,
        &app.policy_configmap,
    ) {
        Ok(prepared) => prepared,
        Err(e) => return refuse(&app, StatusCode::BAD_REQUEST, e.reason(), e),
    };
    let reviewed = match prepared {
        Prepared::Answered(reviewed) => reviewed,
        Prepared::Evaluate(pending) => {
            let images = pending.lookups();
            let facts = if images.is_empty() {
                None
            } else {
                let options = &pending.policy().options;
                // Every look-up waits at most min(the policy's timeout, the request's timeout less a margin).
                let wait = options
                    .registry
                    .timeout
                    .min(deadline.saturating_sub(started.elapsed()));
                let facts = app
                    .resolver
                    .resolve_all(
                        images,
                        options,
                        pending.policy().signature_policy(),
                        Instant::now() + wait,
                    )
                    .await;
                Some(facts)
            };
            pending.finish(facts.as_ref())
        }
    };
    let Reviewed {
        body,
        alert,
        summary: s,
    } = reviewed;
    // One span per review. It is at debug level, like the per-review event: the alert stream already
    // records every review with violations, and formatting a log line per review would cost more than
    // judging it. `VIGIL_LOG=debug` shows them.
    let span = tracing::debug_span!(
        "review",
        uid = %s.uid,
        kind = s.kind,
        namespace = %s.namespace,
        name = %s.name,
        operation = s.operation,
    );
    let _entered = span.enter();
    if let Some(alert) = alert {
        app.alerts.write(alert);
    }
    tracing::debug!(
        decision = s.decision,
        violations = s.violations.len(),
        "review answered"
    );
    app.metrics
        .record_review(&s, started.elapsed().as_secs_f64());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_come_from_the_query() {
        assert_eq!(
            request_timeout(Some("timeout=5s")),
            Duration::from_millis(4800)
        );
        assert_eq!(
            request_timeout(Some("a=b&timeout=2s")),
            Duration::from_millis(1800)
        );
        assert_eq!(request_timeout(None), Duration::from_millis(9800));
        assert_eq!(
            request_timeout(Some("timeout=bogus")),
            Duration::from_millis(9800)
        );
        assert_eq!(
            request_timeout(Some("timeout=100ms")),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn json_content_types() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert!(is_json(Some(&v("application/json"))));
        assert!(is_json(Some(&v("application/json; charset=utf-8"))));
        assert!(is_json(Some(&v("Application/JSON"))));
        assert!(!is_json(Some(&v("text/plain"))));
        assert!(!is_json(Some(&v("application/jsonx"))));
        assert!(!is_json(None));
    }
}
