//! Where records come from: the X API filtered stream, a replay file, or
//! synthetic load. Each source sends [`Record`](crate::processor::Record)s into a
//! bounded channel: when the producer falls behind, the source waits
//! (back-pressure) instead of growing memory.

pub mod replay;
pub mod synthetic;
pub mod x_api;
