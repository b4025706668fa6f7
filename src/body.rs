//! The one body type that flows through the proxy in both directions.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

/// Errors a body stream may end with (client or upstream disconnects, mostly).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streamed request or response body.
pub type Body = BoxBody<Bytes, BoxError>;

/// A body held in memory: gateway-made responses and small buffered forms.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// Wraps any streaming body, erasing its error type.
pub fn stream<B>(body: B) -> Body
where
    B: hyper::body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}
