//! The life of an API token, step by step, on the in-memory store.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use api_tokens::{
    ApiTokens, Expiry, ListRequest, ManualClock, MemoryStore, NewToken, Requirements,
    presented_token,
};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A manual clock so the example can jump a year ahead; services use the default
    // system clock (`ApiTokens::new(store, "dz")`).
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let tokens = ApiTokens::builder(MemoryStore::new(), "dz")
        .clock(clock.clone())
        .build()?;

    // 1. Issue. The plaintext is shown once; the store keeps only its SHA-256.
    let issued = tokens
        .issue(
            NewToken::new("user_42", "deploy-script")
                .tenant("business_7")
                .description("Deploys from CI")
                .scopes(["tokens:read", "tokens:write"]),
        )
        .await?;
    let token = issued.plaintext.expose_secret().to_owned();
    println!("1. issued   {} (id {})", issued.plaintext, issued.record.id);
    let expires = match issued.record.expires_at {
        Some(at) => at.format(&Rfc3339)?,
        None => "never".into(),
    };
    println!("            expires {expires}");
    println!("            show the user once: {token}");

    // 2. Verify, as sent in either header.
    let bearer = format!("Bearer {token}");
    let who = tokens
        .verify(presented_token(Some(bearer.as_bytes()), None)?)
        .await?;
    println!(
        "2. verified Authorization: Bearer … -> owner {}, tenant {:?}",
        who.owner(),
        who.tenant()
    );
    let who = tokens
        .verify_with(
            presented_token(None, Some(token.as_bytes()))?,
            &Requirements::scopes(&["tokens:write"]).tenant(Some("business_7")),
        )
        .await?;
    println!(
        "   verified X-API-Key: … with scope tokens:write -> token {}",
        who.token_id()
    );

    // 3. List: never the plaintext, never the hash.
    clock.advance(Duration::seconds(1));
    tokens
        .issue(NewToken::new("user_42", "monitoring-bot"))
        .await?;
    let page = tokens.list(&ListRequest::new("user_42")).await?;
    println!("3. listed   {} tokens:", page.meta.total);
    for t in &page.data {
        let last = t
            .last_used_at
            .map_or(Ok("never".into()), |t| t.format(&Rfc3339))?;
        println!(
            "            {:<16} {}…  last used {last}",
            t.name, t.token_prefix
        );
    }

    // 4. Rotate with a grace period: the old token works for one more hour.
    let rotated = tokens
        .rotate("user_42", who.token_id(), Duration::hours(1))
        .await?;
    let new_token = rotated.plaintext.expose_secret().to_owned();
    println!(
        "4. rotated  -> {}; old token still valid: {}",
        rotated.plaintext,
        tokens.verify(&token).await.is_ok()
    );
    clock.advance(Duration::hours(1));
    println!(
        "   an hour later, old token: {}",
        tokens.verify(&token).await.unwrap_err()
    );

    // 5. Revoke: the very next verification fails, with a 401.
    tokens
        .revoke("user_42", rotated.record.id, Some("no longer needed"))
        .await?;
    let err = tokens.verify(&new_token).await.unwrap_err();
    println!(
        "5. revoked  -> next verify: {} (HTTP {})",
        err,
        err.status()
    );

    // 6. Expire: a 30-day token stops working when the clock passes its expiry.
    let short = tokens
        .issue(NewToken::new("user_42", "trial").expires(Expiry::InDays(30)))
        .await?;
    let short_token = short.plaintext.expose_secret();
    tokens.verify(short_token).await?;
    println!("6. issued a 30-day token; verifies today");
    clock.advance(Duration::days(30));
    let err = tokens.verify(short_token).await.unwrap_err();
    println!("   30 days later: {} (HTTP {})", err, err.status());

    // 7. Revoke everything the user still has.
    let n = tokens
        .revoke_all("user_42", None, Some("offboarding"))
        .await?;
    println!("7. revoked all remaining tokens of user_42: {n}");
    Ok(())
}
