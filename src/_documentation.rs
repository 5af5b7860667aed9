//! The project's longer documents, rendered into the API docs so that they are read beside
//! the code they explain.
//!
//! - [`design`]: why the crate is the way it is;
//! - [`compare`]: how it compares with the other Rust crates for API keys;
//! - [`changelog`]: what changed, release by release.

#[doc = include_str!("../DESIGN.md")]
pub mod design {}

#[doc = include_str!("../COMPARE.md")]
pub mod compare {}

#[doc = include_str!("../CHANGELOG.md")]
pub mod changelog {}
