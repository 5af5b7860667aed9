//! The conformance cases, one behaviour each, grouped by what they exercise.

mod cap;
mod children;
mod concurrency;
mod expiry;
mod input;
mod issue;
mod issuers;
mod lifecycle;
mod list;
mod reach;
mod revoke;
mod rotate;
mod store_rules;
mod usage;
mod verify;

pub use cap::*;
pub use children::*;
pub use concurrency::*;
pub use expiry::*;
pub use input::*;
pub use issue::*;
pub use issuers::*;
pub use lifecycle::*;
pub use list::*;
pub use reach::*;
pub use revoke::*;
pub use rotate::*;
pub use store_rules::*;
pub use usage::*;
pub use verify::*;
