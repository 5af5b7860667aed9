//! The conformance suite: every lifecycle rule, run against any [`TokenStore`].
//!
//! A store passes when every case passes against it. Run them all, one test each, with
//! [`conformance_tests!`](crate::conformance_tests) (needs `tokio` with the `macros` and
//! `rt-multi-thread` features in your dev-dependencies):
//!
//! ```no_run
//! // tests/conformance.rs: for your own store, put its constructor in the block.
//! api_tokens::conformance_tests!(async { api_tokens::MemoryStore::new() });
//! # fn main() {}
//! ```
//!
//! The expression is evaluated once per case and must give a fresh, empty store (for a
//! database: a fresh table or schema), because some cases count or purge everything.
//!
//! Attributes written before the expression go on every generated test. A backend that is
//! not always reachable should be **ignored, visibly**, rather than pass without running:
//!
//! ```no_run
//! # async fn connect_to_my_database() -> api_tokens::MemoryStore { api_tokens::MemoryStore::new() }
//! api_tokens::conformance_tests!(
//!     #[cfg_attr(not(my_db_configured), ignore = "set MY_DB_URL to run the database suite")]
//!     connect_to_my_database()
//! );
//! # fn main() {}
//! ```
//!
//! Each case is also a public `async fn` taking the store, for running one by hand, and
//! [`run_all`] runs every case in turn; they panic with a message naming the broken rule.
//! [`CASES`] names them all, in order. The [store guide](crate::store#implementing-a-store)
//! shows a store written from scratch passing the suite.

use std::future::Future;

use crate::TokenStore;

mod cases;
mod counting;
mod fixtures;
mod optional;

pub use cases::*;
pub use counting::{Calls, CountingStore};
pub use optional::every_optional_operation_is_supported;

/// Define one `#[tokio::test]` per conformance case, each on a fresh store from `$make`
/// (an expression giving a future of the store, evaluated once per case).
///
/// Attributes before `$make` are put on every generated test, e.g. `#[ignore = "…"]` or
/// `#[cfg_attr(…, ignore = "…")]` for a backend that is not configured.
///
/// The list of cases is written once, here; [`run_all`](crate::testkit::run_all) and
/// [`CASES`](crate::testkit::CASES) expand from it.
#[macro_export]
macro_rules! conformance_tests {
    (@cases $callback:ident ($($args:tt)*)) => {
        $crate::conformance_tests! { @$callback $($args)*;
            issue_and_verify,
            only_the_hash_is_stored,
            invalid_fields_are_named_and_nothing_is_written,
            insert_never_overwrites,
            store_round_trips_every_field,
            last_use_only_moves_forward,
            update_writes_only_approved_changes,
            updates_are_atomic_under_contention,
            last_use_racing_an_update_keeps_both,
            rotate_writes_both_records_or_neither,
            get_now_agrees_with_get,
            read_now_agrees_with_get,
            malformed_tokens_never_touch_the_store,
            unknown_id_and_wrong_secret_look_the_same,
            scopes_and_tenant_are_enforced,
            last_use_is_written_once_per_interval,
            expiry_follows_the_clock,
            lifetime_policy_is_enforced,
            revoke_by_id,
            revoke_the_presented_token,
            revoke_all_of_an_owner,
            revocation_cannot_be_undone,
            purge_removes_only_long_dead_records,
            listing_is_paged_newest_first,
            listing_is_private_to_the_owner_and_tenant,
            listing_hides_inactive_tokens_unless_asked,
            inactive_tokens_keep_their_place_in_a_full_listing,
            active_listing_follows_the_clock_either_way,
            listing_rejects_bad_paging,
            get_is_private_to_the_owner,
            rotation_issues_a_like_for_like_replacement,
            rotation_grace_keeps_the_old_token_until_it_ends,
            rotation_without_grace_revokes_at_once,
            rotation_refuses_foreign_and_inactive_tokens,
            a_token_is_rotated_at_most_once,
            rotation_after_revocation_fails_and_leaves_no_successor,
            concurrent_rotations_leave_one_successor,
            revoke_all_racing_a_rotation_leaves_nothing_live,
            another_issuers_token_is_refused,
            identifiers_are_refused_not_altered,
            display_text_refuses_invisible_characters,
            the_active_token_cap_is_enforced,
            the_active_token_cap_holds_under_contention,
            rotation_respects_the_active_token_cap,
            rotations_racing_for_the_last_place_under_the_cap,
            verifies_racing_a_revoke,
            concurrent_issues_are_all_kept,
            list_pages_agree_with_their_totals,
            a_created_token_never_exceeds_its_creator,
            revoking_a_token_revokes_what_it_created,
            a_revoked_creator_creates_nothing,
            tokens_created_racing_their_creators_revocation_never_survive,
            idle_tokens_stop_verifying,
            a_token_can_be_narrowed_but_never_widened,
            suspension_is_reversible_and_revocation_is_not,
            expiring_tokens_are_listed_soonest_first,
            leaked_tokens_are_revoked_and_reported,
            metadata_is_kept_bounded_and_returned,
            ip_allowlists_are_enforced,
            description_lengths_follow_the_policy,
            suspension_reaches_created_tokens,
            narrowing_reaches_created_tokens,
            rotation_never_revives_or_outlives,
            leaked_tokens_take_their_successors_with_them,
            an_edit_during_a_rotation_is_kept_in_the_successor,
            far_future_instants_are_refused,
            usage_limits_are_counted_and_refilled,
            consuming_a_use_is_a_conditional_decrement,
            racing_verifications_never_share_the_last_use,
            usage_limits_cannot_be_escaped,
        }
    };
    (@tests $attrs:tt $make:expr; $case:ident, $($rest:ident,)*) => {
        $crate::conformance_tests!(@test $attrs $make; $case);
        $crate::conformance_tests!(@tests $attrs $make; $($rest,)*);
    };
    (@tests $attrs:tt $make:expr;) => {};
    (@test [$(#[$attr:meta])*] $make:expr; $case:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $case() {
            $crate::testkit::$case($make.await).await;
        }
    };
    (@run_all $make:ident; $($case:ident),* $(,)?) => {
        $( $crate::testkit::$case($make().await).await; )*
    };
    (@names; $($case:ident),* $(,)?) => {
        &[$(stringify!($case)),*]
    };
    (@attrs [$($attrs:tt)*] #[$attr:meta] $($rest:tt)*) => {
        $crate::conformance_tests!(@attrs [$($attrs)* #[$attr]] $($rest)*);
    };
    (@attrs $attrs:tt $make:expr $(,)?) => {
        $crate::conformance_tests!(@cases tests ($attrs $make));
    };
    ($($input:tt)+) => {
        $crate::conformance_tests!(@attrs [] $($input)+);
    };
}

/// The name of every conformance case, in the order [`run_all`] runs them.
pub const CASES: &[&str] = crate::conformance_tests!(@cases names ());

/// Run every case in order, each on a fresh store from `make`.
///
/// Some cases spawn tasks: run it on a multi-threaded Tokio runtime.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: TokenStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    crate::conformance_tests!(@cases run_all (make));
}

#[cfg(test)]
mod tests {
    /// Every public case in `cases/` is in the one list, and the list names nothing else.
    #[test]
    fn the_case_list_names_every_case() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/testkit/cases");
        let mut defined = Vec::new();
        for entry in std::fs::read_dir(dir).expect("the cases directory") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("a case file");
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("pub async fn ") {
                    defined.push(rest.split('<').next().expect("a name").to_owned());
                }
            }
        }
        let mut listed: Vec<String> = super::CASES.iter().map(|s| (*s).to_owned()).collect();
        defined.sort();
        listed.sort();
        assert_eq!(
            defined, listed,
            "a case is missing from `conformance_tests!`'s list"
        );
    }
}
