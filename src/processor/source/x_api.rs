//! X API v2 filtered stream (placeholder, being written).
