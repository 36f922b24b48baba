//! What the request-head tests share.

/// Fields that decide a head's shape rather than being plain fields: their
/// presence hands the head over (or, for `te` and `connection`, may).
pub const SHAPING: [&str; 6] = [
    "te",
    "expect",
    "upgrade",
    "connection",
    "content-length",
    "transfer-encoding",
];
