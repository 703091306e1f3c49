//! Helpers shared by the crate's unit tests.

/// `PROPTEST_CASES` when set (a longer local hunt), else `default`: an
/// explicit `with_cases` would otherwise ignore the variable.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
