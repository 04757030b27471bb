//! Reading a request body into one buffer, within the body limit, with its
//! bytes reserved in the server's memory gate before they are held.

use bytes::Bytes;
use http_body_util::BodyExt as _;

use crate::error::ApiError;
use crate::limits::{Held, Limits};

/// What a body without `Content-Length` reserves before its first bytes:
/// most bodies are small and arrive in one piece.
const FIRST_RESERVATION: usize = 64 * 1024;

/// Reads a request body of at most `limits.max_body_bytes` into one buffer;
/// returns it with its reservation in the memory gate, which the caller
/// keeps as long as it holds the body (or what is made from it).
///
/// A body with a `Content-Length` reserves that many bytes before it reads
/// any, waiting for room in order with the other bodies: all or nothing, so
/// bodies waiting for room hold none and cannot block each other. One
/// without (chunked) reserves [`FIRST_RESERVATION`], and once it outgrows
/// that the rest of the body limit, given back once the body has ended. A
/// body that says more than the limit, or sends more, is refused
/// (`413`) before any more is read.
///
/// A body that arrives in one piece is used as it is; one in many pieces is
/// copied once into a buffer of the reserved size, instead of being
/// collected and then joined, which held every large body twice.
pub(crate) async fn read_body(
    body: &mut axum::body::Body,
    declared: Option<usize>,
    limits: &Limits,
) -> Result<(Bytes, Held), ApiError> {
    let limit = limits.max_body_bytes;
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let first = declared.unwrap_or(FIRST_RESERVATION.min(limit));
    let mut held = limits.memory().reserve(first).await?;
    let mut head: Option<Bytes> = None;
    let mut joined: Option<Vec<u8>> = None;
    let mut total = 0_usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| ApiError::BodyUnreadable(err.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len();
        if total > limit {
            return Err(ApiError::BodyTooLarge { limit });
        }
        if total > held.bytes() {
            held.grow(limit - held.bytes()).await?;
        }
        if let Some(buffer) = joined.as_mut() {
            buffer.extend_from_slice(&data);
        } else if let Some(first) = head.take() {
            let capacity = held.bytes().max(first.len() + data.len());
            let mut buffer = Vec::with_capacity(capacity);
            buffer.extend_from_slice(&first);
            buffer.extend_from_slice(&data);
            joined = Some(buffer);
        } else {
            head = Some(data);
        }
    }
    let body = joined.map_or_else(|| head.unwrap_or_default(), Bytes::from);
    if declared.is_none() {
        held.shrink_to(body.len());
    }
    Ok((body, held))
}

#[cfg(test)]
mod tests {
    use std::future::Future as _;

    use super::*;
    use crate::config::ServerConfig;

    fn limits(max_body: usize, in_flight: usize) -> Limits {
        Limits::new(&ServerConfig {
            max_body_bytes: max_body,
            max_in_flight_bytes: Some(in_flight),
            ..ServerConfig::default()
        })
    }

    /// A body that arrives in `pieces`, without a length.
    fn chunked(pieces: Vec<&'static [u8]>) -> axum::body::Body {
        struct Pieces(std::collections::VecDeque<Bytes>);
        impl hyper::body::Body for Pieces {
            type Data = Bytes;
            type Error = std::convert::Infallible;
            fn poll_frame(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>>
            {
                std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(hyper::body::Frame::data(b))))
            }
        }
        axum::body::Body::new(Pieces(pieces.into_iter().map(Bytes::from_static).collect()))
    }

    #[tokio::test]
    async fn a_chunked_body_keeps_only_what_it_holds() {
        let limits = limits(1 << 20, 2 << 20);
        let (body, held) = read_body(&mut chunked(vec![b"{\"pay", b"loads\":[]}"]), None, &limits)
            .await
            .unwrap();
        assert_eq!(&body[..], b"{\"payloads\":[]}");
        assert_eq!(held.bytes(), body.len());
        assert_eq!(limits.memory().in_use(), body.len());
        drop(held);
        assert_eq!(limits.memory().in_use(), 0);
    }

    #[tokio::test]
    async fn bodies_above_the_limit_are_refused() {
        let limits = limits(1024, 1 << 20);
        let err = read_body(&mut axum::body::Body::empty(), Some(1025), &limits)
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::BodyTooLarge { limit: 1024 }));
        let big: &'static [u8] = Box::leak(vec![b' '; 700].into_boxed_slice());
        let err = read_body(&mut chunked(vec![big, big]), None, &limits)
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::BodyTooLarge { limit: 1024 }));
        assert_eq!(limits.memory().in_use(), 0, "nothing kept after a refusal");
    }

    #[tokio::test]
    async fn a_body_waits_for_room_in_the_gate() {
        let limits = limits(1024, 1500);
        let (_first, held) = read_body(
            &mut axum::body::Body::from(vec![b' '; 1000]),
            Some(1000),
            &limits,
        )
        .await
        .unwrap();
        let mut second_body = axum::body::Body::from(vec![b' '; 1000]);
        let second = read_body(&mut second_body, Some(1000), &limits);
        let mut second = std::pin::pin!(second);
        let waiting = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(second.as_mut().poll(cx).is_pending())
        })
        .await;
        assert!(waiting, "no room until the first body is given back");
        drop(held);
        let (body, _) = second.await.unwrap();
        assert_eq!(body.len(), 1000);
    }
}
