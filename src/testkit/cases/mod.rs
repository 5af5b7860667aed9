//! The conformance cases, one behaviour each, grouped by what they exercise.

mod concurrency;
mod expiry;
mod issue;
mod list;
mod revoke;
mod rotate;
mod store_rules;
mod verify;

pub use concurrency::*;
pub use expiry::*;
pub use issue::*;
pub use list::*;
pub use revoke::*;
pub use rotate::*;
pub use store_rules::*;
pub use verify::*;
