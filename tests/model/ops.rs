//! The operations of a random run, how each is run against the real `ApiTokens`, and how
//! each is applied to the model.

use api_tokens::{
    ApiTokens, AuthError, Error, Expiry, ListRequest, ManualClock, NewToken, Requirements, TokenId,
    TokenStore,
};
use proptest::prelude::*;
use time::Duration;

use crate::model::{Answer, Model};

/// Owners, tenants and tokens are small numbers so that runs collide often.
#[derive(Debug, Clone)]
pub enum Op {
    Issue {
        owner: u8,
        tenant: Option<u8>,
        days: i64,
    },
    Verify {
        token: usize,
        tenant: Option<u8>,
    },
    Revoke {
        owner: u8,
        token: usize,
    },
    RevokeAll {
        owner: u8,
        tenant: Option<u8>,
    },
    Rotate {
        owner: u8,
        token: usize,
        grace_hours: i64,
    },
    Purge {
        retention_hours: i64,
    },
    List {
        owner: u8,
        include_inactive: bool,
    },
    Get {
        owner: u8,
        token: usize,
    },
    Advance {
        hours: i64,
    },
    /// Two operations at once.
    Together(Box<Op>, Box<Op>),
}

fn single() -> impl Strategy<Value = Op> {
    let owner = 0u8..3;
    let tenant = prop::option::of(0u8..2);
    let token = 0usize..64;
    prop_oneof![
        4 => (owner.clone(), tenant.clone(), 1i64..4).prop_map(|(owner, tenant, days)| Op::Issue { owner, tenant, days }),
        4 => (token.clone(), tenant.clone()).prop_map(|(token, tenant)| Op::Verify { token, tenant }),
        2 => (owner.clone(), token.clone()).prop_map(|(owner, token)| Op::Revoke { owner, token }),
        1 => (owner.clone(), tenant).prop_map(|(owner, tenant)| Op::RevokeAll { owner, tenant }),
        3 => (owner.clone(), token.clone(), 0i64..3).prop_map(|(owner, token, grace_hours)| Op::Rotate { owner, token, grace_hours }),
        1 => (0i64..48).prop_map(|retention_hours| Op::Purge { retention_hours }),
        1 => (owner.clone(), any::<bool>()).prop_map(|(owner, include_inactive)| Op::List { owner, include_inactive }),
        1 => (owner, token).prop_map(|(owner, token)| Op::Get { owner, token }),
        2 => (1i64..30).prop_map(|hours| Op::Advance { hours }),
    ]
}

/// One step: a single operation, or (one time in five) two at once.
pub fn step() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => single(),
        1 => (single(), single())
            .prop_filter("the clock does not move during a concurrent step", |(a, b)| {
                !matches!(a, Op::Advance { .. }) && !matches!(b, Op::Advance { .. })
            })
            .prop_map(|(a, b)| Op::Together(Box::new(a), Box::new(b))),
    ]
}

fn owner(n: u8) -> String {
    format!("o{n}")
}

fn tenant(n: u8) -> String {
    format!("t{n}")
}

/// What a real run produced beside the answer: a new token's id and plaintext.
pub type Made = Option<(TokenId, String)>;

/// Every token issued in a run, in order (purged ones too): operations name them by index.
#[derive(Default, Clone)]
pub struct Issued(pub Vec<(TokenId, String)>);

impl Issued {
    fn pick(&self, i: usize) -> Option<&(TokenId, String)> {
        (!self.0.is_empty()).then(|| &self.0[i % self.0.len()])
    }
}

fn error_code(e: &Error) -> &'static str {
    e.code()
}

/// Run `op` on the real service.
pub async fn run<S: TokenStore>(
    t: &ApiTokens<S>,
    clock: &ManualClock,
    issued: &Issued,
    op: &Op,
) -> (Answer, Made) {
    match op {
        Op::Issue {
            owner: o,
            tenant: tn,
            days,
        } => {
            let mut new = NewToken::new(owner(*o), "model").expires(Expiry::InDays(*days));
            if let Some(tn) = tn {
                new = new.tenant(tenant(*tn));
            }
            match t.issue(new).await {
                Ok(i) => (
                    Answer::Issued,
                    Some((i.record.id, i.plaintext.expose_secret().to_owned())),
                ),
                Err(Error::TooManyTokens { .. }) => (Answer::TooMany, None),
                Err(e) => (Answer::Error(error_code(&e)), None),
            }
        }
        Op::Verify { token, tenant: tn } => {
            let Some((_, plain)) = issued.pick(*token) else {
                return (Answer::Refused("invalid"), None);
            };
            let tn = tn.map(tenant);
            let needs = Requirements::NONE.tenant(tn.as_deref());
            let answer = match t.verify_with(plain, &needs).await {
                Ok(p) => Answer::Verified {
                    owner: p.owner()[1..].parse().expect("an owner"),
                },
                Err(AuthError::Invalid) => Answer::Refused("invalid"),
                Err(AuthError::Revoked { .. }) => Answer::Refused("revoked"),
                Err(AuthError::Expired { .. }) => Answer::Refused("expired"),
                Err(AuthError::WrongTenant) => Answer::Refused("wrong_tenant"),
                Err(e) => panic!("verify failed unexpectedly: {e:?}"),
            };
            (answer, None)
        }
        Op::Revoke { owner: o, token } => {
            let Some(&(id, _)) = issued.pick(*token) else {
                return (Answer::Error("not_found"), None);
            };
            match t.revoke(&owner(*o), id, Some("model")).await {
                Ok(()) => (Answer::Revoked, None),
                Err(e) => (Answer::Error(error_code(&e)), None),
            }
        }
        Op::RevokeAll {
            owner: o,
            tenant: tn,
        } => {
            let tn = tn.map(tenant);
            let n = t
                .revoke_all(&owner(*o), tn.as_deref(), Some("all"))
                .await
                .expect("revoke all");
            (Answer::RevokedAll(n), None)
        }
        Op::Rotate {
            owner: o,
            token,
            grace_hours,
        } => {
            let Some(&(id, _)) = issued.pick(*token) else {
                return (Answer::Error("not_found"), None);
            };
            match t
                .rotate(&owner(*o), id, Duration::hours(*grace_hours))
                .await
            {
                Ok(i) => (
                    Answer::Rotated,
                    Some((i.record.id, i.plaintext.expose_secret().to_owned())),
                ),
                Err(Error::TooManyTokens { .. }) => (Answer::TooMany, None),
                Err(e) => (Answer::Error(error_code(&e)), None),
            }
        }
        Op::Purge { retention_hours } => {
            let n = t
                .purge(Duration::hours(*retention_hours))
                .await
                .expect("purge");
            (Answer::Purged(n), None)
        }
        Op::List {
            owner: o,
            include_inactive,
        } => {
            let owned = owner(*o);
            let request = ListRequest::new(&owned)
                .per_page(100)
                .include_inactive(*include_inactive);
            let page = t.list(&request).await.expect("list");
            (
                Answer::Listed(page.data.iter().map(|i| i.id).collect(), page.meta.total),
                None,
            )
        }
        Op::Get { owner: o, token } => {
            let Some(&(id, _)) = issued.pick(*token) else {
                return (Answer::Error("not_found"), None);
            };
            match t.get(&owner(*o), id).await {
                Ok(info) => (
                    Answer::Got {
                        revoked: info.revoked_at.is_some(),
                        expires: info.expires_at,
                        successor: info.replaced_by,
                    },
                    None,
                ),
                Err(e) => (Answer::Error(error_code(&e)), None),
            }
        }
        Op::Advance { hours } => {
            clock.advance(Duration::hours(*hours));
            (Answer::Purged(0), None)
        }
        Op::Together(..) => unreachable!("run concurrently by the runner"),
    }
}

/// Apply `op` to the model, with the values the real run made; the model's answer.
pub fn apply(m: &mut Model, issued: &Issued, op: &Op, made: &Made) -> Answer {
    match op {
        Op::Issue {
            owner,
            tenant,
            days,
        } => m.issue(*owner, *tenant, *days, made.clone()),
        Op::Verify { token, tenant } => match issued.pick(*token) {
            Some(&(id, _)) => m.verify(id, *tenant),
            None => Answer::Refused("invalid"),
        },
        Op::Revoke { owner, token } => match issued.pick(*token) {
            Some(&(id, _)) => m.revoke(*owner, id),
            None => Answer::Error("not_found"),
        },
        Op::RevokeAll { owner, tenant } => m.revoke_all(*owner, *tenant),
        Op::Rotate {
            owner,
            token,
            grace_hours,
        } => match issued.pick(*token) {
            Some(&(id, _)) => m.rotate(*owner, id, *grace_hours, made.clone()),
            None => Answer::Error("not_found"),
        },
        Op::Purge { retention_hours } => m.purge(*retention_hours),
        Op::List {
            owner,
            include_inactive,
        } => m.list(*owner, *include_inactive),
        Op::Get { owner, token } => match issued.pick(*token) {
            Some(&(id, _)) => m.get(*owner, id),
            None => Answer::Error("not_found"),
        },
        Op::Advance { hours } => {
            m.now += Duration::hours(*hours);
            Answer::Purged(0)
        }
        Op::Together(..) => unreachable!("applied in both orders by the runner"),
    }
}
