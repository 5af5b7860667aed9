//! The reference model: the lifecycle rules, written as plainly as possible over a vector
//! of tokens, with no storage, no concurrency and no cleverness.

use api_tokens::TokenId;
use time::{Duration, OffsetDateTime};

/// The cap on an owner's active tokens in the model's policy.
pub const CAP: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: TokenId,
    pub plaintext: String,
    pub owner: u8,
    pub tenant: Option<u8>,
    pub created: OffsetDateTime,
    pub expires: Option<OffsetDateTime>,
    pub revoked: Option<OffsetDateTime>,
    pub reason: Option<String>,
    pub successor: Option<TokenId>,
}

impl Token {
    pub fn active(&self, now: OffsetDateTime) -> bool {
        self.revoked.is_none() && self.expires.is_none_or(|e| e > now)
    }
}

/// What an operation answered, reduced to what the model can predict. Generated values
/// (ids, plaintexts) come from the real answer and are checked for consistency, not value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Issued,
    TooMany,
    Verified {
        owner: u8,
    },
    Refused(&'static str),
    Revoked,
    RevokedAll(u64),
    Rotated,
    Purged(u64),
    Listed(Vec<TokenId>, u64),
    Got {
        revoked: bool,
        expires: Option<OffsetDateTime>,
        successor: Option<TokenId>,
    },
    Error(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub now: OffsetDateTime,
    /// Every token ever issued, in issue order; purged ones are removed.
    pub tokens: Vec<Token>,
}

impl Model {
    pub fn new(now: OffsetDateTime) -> Self {
        Self {
            now,
            tokens: Vec::new(),
        }
    }

    fn find(&self, id: TokenId) -> Option<usize> {
        self.tokens.iter().position(|t| t.id == id)
    }

    pub fn issue(
        &mut self,
        owner: u8,
        tenant: Option<u8>,
        days: i64,
        got: Option<(TokenId, String)>,
    ) -> Answer {
        let active = self
            .tokens
            .iter()
            .filter(|t| t.owner == owner && t.active(self.now))
            .count();
        if active >= CAP {
            return Answer::TooMany;
        }
        let Some((id, plaintext)) = got else {
            return Answer::Issued; // the real store refused: the answers will differ
        };
        self.tokens.push(Token {
            id,
            plaintext,
            owner,
            tenant,
            created: self.now,
            expires: Some(self.now + Duration::days(days)),
            revoked: None,
            reason: None,
            successor: None,
        });
        Answer::Issued
    }

    pub fn verify(&self, id: TokenId, tenant: Option<u8>) -> Answer {
        let Some(t) = self.find(id).map(|i| &self.tokens[i]) else {
            return Answer::Refused("invalid");
        };
        if t.revoked.is_some() {
            Answer::Refused("revoked")
        } else if t.expires.is_some_and(|e| e <= self.now) {
            Answer::Refused("expired")
        } else if tenant.is_some() && t.tenant != tenant {
            Answer::Refused("wrong_tenant")
        } else {
            Answer::Verified { owner: t.owner }
        }
    }

    pub fn revoke(&mut self, owner: u8, id: TokenId) -> Answer {
        let now = self.now;
        match self.find(id).map(|i| &mut self.tokens[i]) {
            Some(t) if t.owner == owner => match t.revoked {
                Some(_) => Answer::Error("already_revoked"),
                None => {
                    t.revoked = Some(now);
                    t.reason = Some("model".into());
                    Answer::Revoked
                }
            },
            _ => Answer::Error("not_found"),
        }
    }

    pub fn revoke_all(&mut self, owner: u8, tenant: Option<u8>) -> Answer {
        let now = self.now;
        let mut n = 0;
        for t in &mut self.tokens {
            if t.owner == owner && t.revoked.is_none() && (tenant.is_none() || t.tenant == tenant) {
                t.revoked = Some(now);
                t.reason = Some("all".into());
                n += 1;
            }
        }
        Answer::RevokedAll(n)
    }

    pub fn rotate(
        &mut self,
        owner: u8,
        id: TokenId,
        grace_hours: i64,
        got: Option<(TokenId, String)>,
    ) -> Answer {
        let now = self.now;
        let Some(i) = self.find(id).filter(|&i| self.tokens[i].owner == owner) else {
            return Answer::Error("not_found");
        };
        let old = self.tokens[i].clone();
        if !old.active(now) {
            return Answer::Error("not_active");
        }
        if old.successor.is_some() {
            return Answer::Error("already_rotated");
        }
        // Under the cap, the successor needs a free place unless the old token ends now.
        let active = self
            .tokens
            .iter()
            .filter(|t| t.owner == owner && t.active(now))
            .count();
        if active - usize::from(grace_hours == 0) >= CAP {
            return Answer::TooMany;
        }
        let Some((new_id, plaintext)) = got else {
            return Answer::Rotated;
        };
        let lifetime = old.expires.map(|e| e - old.created);
        let t = &mut self.tokens[i];
        t.successor = Some(new_id);
        if grace_hours == 0 {
            t.revoked = Some(now);
            t.reason = Some("rotated".into());
        } else {
            let until = now + Duration::hours(grace_hours);
            t.expires = Some(t.expires.map_or(until, |e| e.min(until)));
        }
        self.tokens.push(Token {
            id: new_id,
            plaintext,
            owner: old.owner,
            tenant: old.tenant,
            created: now,
            expires: lifetime.map(|l| now + l),
            revoked: None,
            reason: None,
            successor: None,
        });
        Answer::Rotated
    }

    pub fn purge(&mut self, retention_hours: i64) -> Answer {
        let before = self.now - Duration::hours(retention_hours);
        let size = self.tokens.len();
        self.tokens.retain(|t| {
            !(t.revoked.is_some_and(|r| r < before) || t.expires.is_some_and(|e| e < before))
        });
        Answer::Purged((size - self.tokens.len()) as u64)
    }

    pub fn list(&self, owner: u8, include_inactive: bool) -> Answer {
        let mut mine: Vec<&Token> = self
            .tokens
            .iter()
            .filter(|t| t.owner == owner && (include_inactive || t.active(self.now)))
            .collect();
        mine.sort_by_key(|t| std::cmp::Reverse((t.created, t.id)));
        let total = mine.len() as u64;
        Answer::Listed(mine.iter().take(100).map(|t| t.id).collect(), total)
    }

    pub fn get(&self, owner: u8, id: TokenId) -> Answer {
        match self.find(id).map(|i| &self.tokens[i]) {
            Some(t) if t.owner == owner => Answer::Got {
                revoked: t.revoked.is_some(),
                expires: t.expires,
                successor: t.successor,
            },
            _ => Answer::Error("not_found"),
        }
    }
}
