//! Input: identifiers are never altered, display text never hides characters, and every
//! entry point refuses what it cannot store with a 422 naming the field.

use time::Duration;

use crate::testkit::fixtures::{kit, record};
use crate::{AuthError, Error, ListRequest, NewToken, Requirements, TokenStore};

fn refused(result: Result<impl std::fmt::Debug, Error>, field: &str) {
    match result {
        Err(Error::Invalid(v)) => assert!(v.has(field), "{field} not named in {v}"),
        other => panic!("expected a 422 naming {field}, got {other:?}"),
    }
}

/// Owners and tenants with surrounding whitespace, control or format characters are
/// refused by every entry point, identically, before the store is asked; valid ones are
/// kept byte for byte.
pub async fn identifiers_are_refused_not_altered<S: TokenStore>(store: S) {
    let k = kit(store);
    let id = record("x", crate::testkit::fixtures::epoch()).id;
    for bad in [
        "\u{3000}carol ",
        " carol",
        "carol\n",
        "ca\u{0}rol",
        "ca\u{200b}rol",
        "",
    ] {
        refused(k.tokens.issue(NewToken::new(bad, "n")).await, "owner");
        refused(
            k.tokens
                .issue(NewToken::new("carol", "n").tenant(bad))
                .await,
            "tenant",
        );
        refused(k.tokens.list(&ListRequest::new(bad)).await, "owner");
        refused(
            k.tokens.list(&ListRequest::new("carol").tenant(bad)).await,
            "tenant",
        );
        refused(k.tokens.get(bad, id).await, "owner");
        refused(k.tokens.revoke(bad, id, None).await, "owner");
        refused(k.tokens.revoke_all(bad, None, None).await, "owner");
        refused(
            k.tokens.revoke_all("carol", Some(bad), None).await,
            "tenant",
        );
        refused(k.tokens.rotate(bad, id, Duration::ZERO).await, "owner");
    }
    assert_eq!(k.calls.total(), 0, "nothing invalid reached the store");

    let exact = "Carol Ünïcode 名前";
    let (plain, rec) = k.issue(NewToken::new(exact, "n").tenant("Tenant ✓")).await;
    assert_eq!(&*rec.owner, exact, "an owner is stored as given");
    let who = k
        .tokens
        .verify_with(&plain, &Requirements::NONE.tenant(Some("Tenant ✓")))
        .await
        .expect("the exact tenant matches");
    assert_eq!(who.owner(), exact);
    let listed = k.tokens.list(&ListRequest::new(exact)).await.expect("list");
    assert_eq!(listed.meta.total, 1, "found by the exact owner");
    let near = k
        .tokens
        .verify_with(&plain, &Requirements::NONE.tenant(Some(" Tenant ✓")))
        .await;
    assert!(matches!(near, Err(AuthError::WrongTenant)), "{near:?}");
}

/// Names, descriptions and reasons are trimmed, and refused if they hide bidi overrides or
/// zero-width characters.
pub async fn display_text_refuses_invisible_characters<S: TokenStore>(store: S) {
    let k = kit(store);
    for bad in [
        "\u{202e}exe.txt",
        "zero\u{200b}width",
        "\u{2066}isolate\u{2069}",
    ] {
        refused(k.tokens.issue(NewToken::new("alice", bad)).await, "name");
        refused(
            k.tokens
                .issue(NewToken::new("alice", "ok").description(bad))
                .await,
            "description",
        );
    }
    let (_, rec) = k.issue(NewToken::new("alice", "  padded name  ")).await;
    assert_eq!(&*rec.name, "padded name");
    refused(
        k.tokens
            .revoke("alice", rec.id, Some("\u{202e}dekael"))
            .await,
        "reason",
    );
    k.tokens
        .revoke("alice", rec.id, Some("  leaked  "))
        .await
        .expect("a plain reason");
}
