//! Reading one of an owner's tokens, and listing them newest first, a page at a time.

use serde::Serialize;

use super::ApiTokens;
use crate::error::{Error, FieldError, ValidationErrors};
use crate::limits::{DEFAULT_PER_PAGE, MAX_PER_PAGE};
use crate::record::TokenInfo;
use crate::store::token_store::TokenStore;
use crate::store::{ExpiringFilter, ListFilter};
use crate::token::TokenId;
use crate::validate::identifier;

/// Which tokens to list: an owner's, optionally one tenant's, active only unless asked.
///
/// ```
/// use api_tokens::ListRequest;
///
/// let request = ListRequest::new("user_42").tenant("business_7").page(2).per_page(50);
/// # let _ = request;
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct ListRequest<'a> {
    owner: &'a str,
    tenant: Option<&'a str>,
    include_inactive: bool,
    page: u32,
    per_page: u32,
}

impl<'a> ListRequest<'a> {
    /// The first page of `owner`'s active tokens, 20 to a page.
    pub fn new(owner: &'a str) -> Self {
        Self {
            owner,
            tenant: None,
            include_inactive: false,
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        }
    }

    /// Only this tenant's tokens.
    pub fn tenant(mut self, tenant: &'a str) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// Include revoked and expired tokens.
    pub fn include_inactive(mut self, include: bool) -> Self {
        self.include_inactive = include;
        self
    }

    /// The page, counting from 1.
    pub fn page(mut self, page: u32) -> Self {
        self.page = page;
        self
    }

    /// Tokens per page, 1–100.
    pub fn per_page(mut self, per_page: u32) -> Self {
        self.per_page = per_page;
        self
    }
}

/// Which tokens are about to expire, for expiry notices ([`ApiTokens::list_expiring`]):
/// every owner's active tokens that expire within a window from now, soonest first.
///
/// ```
/// use api_tokens::ExpiringRequest;
/// use time::Duration;
///
/// let in_a_week = ExpiringRequest::within(Duration::days(7)).page(1).per_page(100);
/// # let _ = in_a_week;
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct ExpiringRequest {
    within: time::Duration,
    page: u32,
    per_page: u32,
}

impl ExpiringRequest {
    /// Tokens that expire within `within` from now (at most 366 days), 20 to a page.
    pub fn within(within: time::Duration) -> Self {
        Self {
            within,
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        }
    }

    /// The page, counting from 1.
    pub fn page(mut self, page: u32) -> Self {
        self.page = page;
        self
    }

    /// Tokens per page, 1–100.
    pub fn per_page(mut self, per_page: u32) -> Self {
        self.per_page = per_page;
        self
    }
}

/// One page of a listing, serialised as the token API's `{"data": [...], "meta": {...}}`.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The items on this page.
    pub data: Vec<T>,
    /// Where this page stands.
    pub meta: PageMeta,
}

/// Paging facts of a [`Page`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PageMeta {
    /// This page, counting from 1.
    pub page: u32,
    /// Items per page.
    pub per_page: u32,
    /// Items on all pages.
    pub total: u64,
}

impl<S: TokenStore> ApiTokens<S> {
    /// `owner`'s token `id`, as users may see it. Another owner's token, or another
    /// issuer's, is [`Error::NotFound`], exactly like an id that does not exist.
    ///
    /// ```
    /// use api_tokens::{ApiTokens, Error, MemoryStore, NewToken};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
    /// let id = tokens.issue(NewToken::new("alice", "ci")).await?.record.id;
    /// assert_eq!(&*tokens.get("alice", id).await?.name, "ci");
    /// assert!(matches!(tokens.get("mallory", id).await, Err(Error::NotFound)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn get(&self, owner: &str, id: TokenId) -> Result<TokenInfo, Error> {
        self.observe_op("get", Some(id), self.get_unobserved(owner, id), |_| {
            Vec::new()
        })
        .await
    }

    async fn get_unobserved(&self, owner: &str, id: TokenId) -> Result<TokenInfo, Error> {
        identifier("owner", owner)?;
        let prefix = self.format().prefix();
        match self.inner.store.get(&id).await? {
            Some(r) if *r.owner == *owner && *r.prefix == *prefix => Ok(r.info()),
            _ => Err(Error::NotFound),
        }
    }

    /// One page of an owner's tokens from this issuer, newest first, never with a hash or a
    /// plaintext. A page of 0, a `per_page` outside 1–100, or an owner or tenant that is not
    /// a valid identifier is [`Error::Invalid`].
    pub async fn list(&self, request: &ListRequest<'_>) -> Result<Page<TokenInfo>, Error> {
        self.observe_op("list", None, self.list_unobserved(request), |_| Vec::new())
            .await
    }

    async fn list_unobserved(&self, request: &ListRequest<'_>) -> Result<Page<TokenInfo>, Error> {
        let mut errors = Vec::new();
        crate::validate::check_identifier("owner", request.owner, &mut errors);
        if let Some(tenant) = request.tenant {
            crate::validate::check_identifier("tenant", tenant, &mut errors);
        }
        if request.page == 0 {
            errors.push(FieldError::new("page", "must be 1 or more"));
        }
        if !(1..=MAX_PER_PAGE).contains(&request.per_page) {
            errors.push(FieldError::new(
                "per_page",
                format!("must be between 1 and {MAX_PER_PAGE}"),
            ));
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(ValidationErrors(errors)));
        }
        let mut filter = ListFilter::new(self.format().prefix(), request.owner, self.now());
        filter.tenant = request.tenant;
        filter.include_inactive = request.include_inactive;
        filter.offset = u64::from(request.page - 1) * u64::from(request.per_page);
        filter.limit = request.per_page;
        let page = self.inner.store.list(&filter).await?;
        Ok(Page {
            data: page.records.iter().map(TokenInfo::from).collect(),
            meta: PageMeta {
                page: request.page,
                per_page: request.per_page,
                total: page.total,
            },
        })
    }

    /// One page of this issuer's tokens, of every owner, that are not revoked and expire
    /// within the request's window from now, soonest first: who to send an expiry notice
    /// (GitLab mails 7 days and 1 day before). Suspended tokens are included (they may be
    /// resumed). A window that is not positive or longer than 366 days, a page of 0, or a
    /// `per_page` outside 1–100 is [`Error::Invalid`].
    ///
    /// ```
    /// use api_tokens::{ApiTokens, Expiry, ExpiringRequest, MemoryStore, NewToken};
    /// use time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let tokens = ApiTokens::new(MemoryStore::new(), "dz")?;
    /// tokens.issue(NewToken::new("alice", "soon").expires(Expiry::InDays(3))).await?;
    /// tokens.issue(NewToken::new("bob", "later").expires(Expiry::InDays(30))).await?;
    /// let page = tokens.list_expiring(&ExpiringRequest::within(Duration::days(7))).await?;
    /// assert_eq!((page.meta.total, &*page.data[0].name), (1, "soon"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn list_expiring(&self, request: &ExpiringRequest) -> Result<Page<TokenInfo>, Error> {
        self.observe_op(
            "list_expiring",
            None,
            self.list_expiring_unobserved(request),
            |_| Vec::new(),
        )
        .await
    }

    async fn list_expiring_unobserved(
        &self,
        request: &ExpiringRequest,
    ) -> Result<Page<TokenInfo>, Error> {
        let mut errors = Vec::new();
        if !request.within.is_positive() || request.within > time::Duration::days(366) {
            errors.push(FieldError::new(
                "within_days",
                "must be more than zero and at most 366 days",
            ));
        }
        if request.page == 0 {
            errors.push(FieldError::new("page", "must be 1 or more"));
        }
        if !(1..=MAX_PER_PAGE).contains(&request.per_page) {
            errors.push(FieldError::new(
                "per_page",
                format!("must be between 1 and {MAX_PER_PAGE}"),
            ));
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(ValidationErrors(errors)));
        }
        let now = self.now();
        let mut filter = ExpiringFilter::new(self.format().prefix(), now, now + request.within);
        filter.offset = u64::from(request.page - 1) * u64::from(request.per_page);
        filter.limit = request.per_page;
        let page = self.inner.store.list_expiring(&filter).await?;
        Ok(Page {
            data: page.records.iter().map(TokenInfo::from).collect(),
            meta: PageMeta {
                page: request.page,
                per_page: request.per_page,
                total: page.total,
            },
        })
    }
}
