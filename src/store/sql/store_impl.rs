//! The [`TokenStore`](crate::TokenStore) implementation both SQL stores share: the same
//! statements and logic, differing in the driver, how timestamps are stored, how errors are
//! classified, and how a transaction starts and locks an owner.
//!
//! Every method runs within the store's deadline. `update` and `rotate` read the record
//! with `SELECT … FOR UPDATE` (SQLite: in a `BEGIN IMMEDIATE` transaction), let the change
//! decide, and write it back in the same transaction. `rotate`, `revoke_all` and
//! `insert_capped` first take a lock on the owner (PostgreSQL: a transaction-scoped
//! advisory lock; SQLite: the database's write lock), so they never interleave for one
//! owner: a revoke-all cannot miss the successor a concurrent rotation inserts.

/// Implement `TokenStore` for a SQL store.
///
/// - `$store`: the store type, with fields `pool`, `table: Arc<TableName>`,
///   `sql: Arc<Statements>` and `deadline: Duration`;
/// - `$db`: the sqlx database type;
/// - `decode`: `fn(&Row) -> Result<TokenRecord, StoreError>`;
/// - `timestamps`: the stored form of a timestamp and `fn(OffsetDateTime) -> $db_ts`;
/// - `error`: `fn(&'static str) -> impl FnOnce(sqlx::Error) -> StoreError`;
/// - `begin`: `async fn(&Pool) -> Result<Transaction, sqlx::Error>`, a transaction for
///   reading, deciding and writing;
/// - `snapshot`: the same for a read-only transaction whose statements all see one snapshot
///   (a page and its total agree);
/// - `lock_owner`: `async fn(&mut Transaction, &str) -> Result<(), sqlx::Error>`;
/// - `last_uses`: `fn(Query, &[(TokenId, OffsetDateTime)]) -> Query`, binding many last uses
///   to the `record_last_uses` statement.
macro_rules! impl_sql_token_store {
    (
        $store:ty, db: $db:ty, decode: $decode:path, timestamps: $db_ts:ty, $to_db:path,
        error: $error:path, begin: $begin:path, snapshot: $snapshot:path,
        lock_owner: $lock_owner:path, last_uses: $bind_last_uses:path
    ) => {
        const _: () = {
            use std::sync::Arc;

            use sqlx::AssertSqlSafe;
            use time::OffsetDateTime;

            use $crate::error::StoreError;
            use $crate::record::TokenRecord;
            use $crate::store::sql::{Statements, scopes_text, within};
            use $crate::store::token_store::TokenStore;
            use $crate::store::{
                Change, ChildInsert, ChildRules, Descendants, ExpiringFilter, ListFilter, ListPage,
                RevokeAll, UseOutcome,
            };
            use $crate::token::TokenId;

            type Query<'q> = sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>;

            fn query(sql: &Arc<str>) -> Query<'static> {
                sqlx::query(AssertSqlSafe(Arc::clone(sql)))
            }

            /// Bind every column of `r`, in `COLUMNS` order (`$1`–`$25`).
            fn bind_record<'q>(q: Query<'q>, r: &'q TokenRecord) -> Query<'q> {
                q.bind(r.id.as_bytes().as_slice())
                    .bind(&*r.owner)
                    .bind(r.tenant.as_deref())
                    .bind(&*r.name)
                    .bind(r.description.as_deref())
                    .bind(scopes_text(&r.scopes))
                    .bind(r.hash.as_bytes().as_slice())
                    .bind(&*r.prefix)
                    .bind($to_db(r.created_at))
                    .bind(r.expires_at.map($to_db))
                    .bind(r.last_used_at.map($to_db))
                    .bind(r.revoked_at.map($to_db))
                    .bind(r.revocation_reason.as_deref())
                    .bind(r.successor.as_ref().map(|s| s.as_bytes().as_slice()))
                    .bind(r.created_by.as_ref().map(|s| s.as_bytes().as_slice()))
                    .bind(r.suspended_at.map($to_db))
                    .bind(r.metadata.as_ref().map(|m| m.as_str().to_owned()))
                    .bind(r.allowed_ips.as_ref().map(|a| a.to_text()))
                    // At most `MAX_USES` (checked when issued), which fits.
                    .bind(
                        r.usage
                            .as_ref()
                            .map(|u| i64::try_from(u.remaining).unwrap_or(i64::MAX)),
                    )
                    .bind(
                        r.usage
                            .as_ref()
                            .and_then(|u| u.refill)
                            .map(|f| f.interval.as_str()),
                    )
                    .bind(
                        r.usage
                            .as_ref()
                            .and_then(|u| u.refill)
                            .map(|f| i64::try_from(f.amount).unwrap_or(i64::MAX)),
                    )
                    .bind(r.usage.as_ref().and_then(|u| u.refilled_at).map($to_db))
                    .bind(r.rate_limit.map(|l| i64::from(l.limit())))
                    .bind(r.rate_limit.map(|l| i64::from(l.per_seconds())))
                    .bind(
                        r.rate_limit
                            .and_then(|l| l.bucket())
                            .map(|b| b.as_bytes().to_vec()),
                    )
            }

            impl $store {
                /// The key that serialises one owner's multi-record writes.
                fn owner_key(&self, prefix: &str, owner: &str) -> String {
                    format!("{}/{prefix}/{owner}", self.table.key())
                }

                /// `rotate`, and `rotate_capped` when `cap` is given: in one transaction
                /// holding the owner's lock, read the record `FOR UPDATE`, let `change`
                /// decide, write the old record back, then insert the successor (under the
                /// cap: only if the owner then has fewer than `cap` active tokens, counting
                /// the old one as it now is). `None`: no record `id`; `Some(false)`: the
                /// cap stopped it and the transaction is rolled back.
                async fn rotate_under(
                    &self,
                    id: &TokenId,
                    change: &mut Change<'_>,
                    successor: &TokenRecord,
                    cap: Option<(u32, OffsetDateTime)>,
                ) -> Result<Option<bool>, StoreError> {
                    let failed = || $error("could not rotate the token");
                    within(self.deadline, async {
                        let mut tx = $begin(&self.pool, self.deadline).await.map_err(failed())?;
                        let key = self.owner_key(&successor.prefix, &successor.owner);
                        $lock_owner(&mut tx, &key).await.map_err(failed())?;
                        let row = query(&self.sql.get_for_update)
                            .bind(id.as_bytes().as_slice())
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(failed())?;
                        let Some(row) = row else {
                            return Ok(None);
                        };
                        let mut record = $decode(&row)?;
                        if !change.apply(&mut record) {
                            return Ok(Some(true));
                        }
                        record.id = *id;
                        bind_record(query(&self.sql.write_back), &record)
                            .execute(&mut *tx)
                            .await
                            .map_err(failed())?;
                        let insert = match cap {
                            None => bind_record(query(&self.sql.insert), successor),
                            Some((cap, now)) => {
                                bind_record(query(&self.sql.insert_capped), successor)
                                    .bind($to_db(now))
                                    .bind(i64::from(cap))
                            }
                        };
                        let inserted = insert.execute(&mut *tx).await.map_err(failed())?;
                        if inserted.rows_affected() != 1 {
                            // Dropping the transaction rolls the old record's change back.
                            return Ok(Some(false));
                        }
                        tx.commit().await.map_err(failed())?;
                        Ok(Some(true))
                    })
                    .await
                }
            }

            impl TokenStore for $store {
                async fn insert(&self, r: &TokenRecord) -> Result<(), StoreError> {
                    within(self.deadline, async {
                        bind_record(query(&self.sql.insert), r)
                            .execute(&self.pool)
                            .await
                            .map_err($error("could not insert the token"))?;
                        Ok(())
                    })
                    .await
                }

                async fn insert_capped(
                    &self,
                    r: &TokenRecord,
                    cap: u32,
                    now: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let failed = || $error("could not insert the token under the owner's cap");
                    within(self.deadline, async {
                        let mut tx = $begin(&self.pool, self.deadline).await.map_err(failed())?;
                        $lock_owner(&mut tx, &self.owner_key(&r.prefix, &r.owner))
                            .await
                            .map_err(failed())?;
                        let done = bind_record(query(&self.sql.insert_capped), r)
                            .bind($to_db(now))
                            .bind(i64::from(cap))
                            .execute(&mut *tx)
                            .await
                            .map_err(failed())?;
                        tx.commit().await.map_err(failed())?;
                        Ok(done.rows_affected() == 1)
                    })
                    .await
                }

                async fn insert_child(
                    &self,
                    r: &TokenRecord,
                    rules: &ChildRules,
                ) -> Result<ChildInsert, StoreError> {
                    let (cap, now) = (rules.cap, rules.now);
                    let failed = || $error("could not insert the token for its creator");
                    let Some(creator) = r.created_by else {
                        return Ok(ChildInsert::CreatorNotActive);
                    };
                    within(self.deadline, async {
                        let mut tx = $begin(&self.pool, self.deadline).await.map_err(failed())?;
                        // The owner's lock orders this against `revoke_descendants`: a
                        // creator revoked before it is seen revoked here; one revoked after
                        // finds this token when its descendants are revoked.
                        $lock_owner(&mut tx, &self.owner_key(&r.prefix, &r.owner))
                            .await
                            .map_err(failed())?;
                        let count = |sql: &Arc<str>| {
                            sqlx::query_scalar::<_, i64>(AssertSqlSafe(Arc::clone(sql)))
                        };
                        // Locked until the insert commits: an edit or suspension of the
                        // creator comes wholly before (and is seen here) or after (and
                        // reaches this token through `update_descendants`).
                        let row = query(&self.sql.get_for_update)
                            .bind(creator.as_bytes().as_slice())
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(failed())?;
                        let allowed = match row {
                            Some(row) => rules.creator_allows(&$decode(&row)?, r),
                            None => false,
                        };
                        if !allowed {
                            return Ok(ChildInsert::CreatorNotActive);
                        }
                        if let Some(cap) = cap {
                            let held: i64 = count(&self.sql.count_active)
                                .bind(&*r.owner)
                                .bind(&*r.prefix)
                                .bind($to_db(now))
                                .fetch_one(&mut *tx)
                                .await
                                .map_err(failed())?;
                            if held >= i64::from(cap) {
                                return Ok(ChildInsert::CapReached);
                            }
                        }
                        bind_record(query(&self.sql.insert), r)
                            .execute(&mut *tx)
                            .await
                            .map_err(failed())?;
                        tx.commit().await.map_err(failed())?;
                        Ok(ChildInsert::Inserted)
                    })
                    .await
                }

                async fn get(&self, id: &TokenId) -> Result<Option<Arc<TokenRecord>>, StoreError> {
                    within(self.deadline, async {
                        let row = query(&self.sql.get)
                            .bind(id.as_bytes().as_slice())
                            .fetch_optional(&self.pool)
                            .await
                            .map_err($error("could not read the token"))?;
                        Ok(row.as_ref().map($decode).transpose()?.map(Arc::new))
                    })
                    .await
                }

                async fn list(&self, f: &ListFilter<'_>) -> Result<ListPage, StoreError> {
                    within(self.deadline, async {
                        let v = Statements::variant(f.tenant.is_some(), !f.include_inactive);
                        let limit = i64::from(f.limit);
                        let offset = i64::try_from(f.offset).unwrap_or(i64::MAX);
                        let mut list = query(&self.sql.list[v]).bind(f.owner).bind(f.prefix);
                        let count_sql = AssertSqlSafe(Arc::clone(&self.sql.count[v]));
                        let mut count = sqlx::query_scalar::<_, i64>(count_sql)
                            .bind(f.owner)
                            .bind(f.prefix);
                        if !f.include_inactive {
                            list = list.bind($to_db(f.now));
                            count = count.bind($to_db(f.now));
                        }
                        if let Some(tenant) = f.tenant {
                            list = list.bind(tenant);
                            count = count.bind(tenant);
                        }
                        // The page and the total come from one snapshot, so that they
                        // agree even while tokens are issued or revoked.
                        let mut tx = $snapshot(&self.pool)
                            .await
                            .map_err($error("could not list tokens"))?;
                        let rows = list
                            .bind(limit)
                            .bind(offset)
                            .fetch_all(&mut *tx)
                            .await
                            .map_err($error("could not list tokens"))?;
                        let total = count
                            .fetch_one(&mut *tx)
                            .await
                            .map_err($error("could not count tokens"))?;
                        tx.commit().await.map_err($error("could not list tokens"))?;
                        Ok(ListPage {
                            records: rows.iter().map($decode).collect::<Result<_, _>>()?,
                            total: u64::try_from(total).unwrap_or_default(),
                        })
                    })
                    .await
                }

                async fn list_expiring(
                    &self,
                    f: &ExpiringFilter<'_>,
                ) -> Result<ListPage, StoreError> {
                    let failed = || $error("could not list expiring tokens");
                    within(self.deadline, async {
                        // The page and the total from one snapshot, as for `list`.
                        let mut tx = $snapshot(&self.pool).await.map_err(failed())?;
                        let rows = query(&self.sql.list_expiring)
                            .bind(f.prefix)
                            .bind($to_db(f.now))
                            .bind($to_db(f.until))
                            .bind(i64::from(f.limit))
                            .bind(i64::try_from(f.offset).unwrap_or(i64::MAX))
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(failed())?;
                        let count = AssertSqlSafe(Arc::clone(&self.sql.count_expiring));
                        let total: i64 = sqlx::query_scalar(count)
                            .bind(f.prefix)
                            .bind($to_db(f.now))
                            .bind($to_db(f.until))
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(failed())?;
                        tx.commit().await.map_err(failed())?;
                        Ok(ListPage {
                            records: rows.iter().map($decode).collect::<Result<_, _>>()?,
                            total: u64::try_from(total).unwrap_or_default(),
                        })
                    })
                    .await
                }

                async fn record_last_use(
                    &self,
                    id: &TokenId,
                    at: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    within(self.deadline, async {
                        let done = query(&self.sql.record_last_use)
                            .bind(id.as_bytes().as_slice())
                            .bind($to_db(at))
                            .execute(&self.pool)
                            .await
                            .map_err($error("could not record the token's last use"))?;
                        Ok(done.rows_affected() > 0)
                    })
                    .await
                }

                async fn record_last_uses(
                    &self,
                    uses: &[(TokenId, OffsetDateTime)],
                ) -> Result<u64, StoreError> {
                    // One row per id (its latest instant): an `UPDATE … FROM` that matches a
                    // row twice would write either.
                    let uses = $crate::store::sql::latest_per_id(uses);
                    if uses.is_empty() {
                        return Ok(0);
                    }
                    within(self.deadline, async {
                        let done = $bind_last_uses(query(&self.sql.record_last_uses), &uses)
                            .execute(&self.pool)
                            .await
                            .map_err($error("could not record the tokens' last uses"))?;
                        Ok(done.rows_affected())
                    })
                    .await
                }

                async fn update(
                    &self,
                    id: &TokenId,
                    change: &mut Change<'_>,
                ) -> Result<bool, StoreError> {
                    let failed = || $error("could not update the token");
                    within(self.deadline, async {
                        let mut tx = $begin(&self.pool, self.deadline).await.map_err(failed())?;
                        let row = query(&self.sql.get_for_update)
                            .bind(id.as_bytes().as_slice())
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(failed())?;
                        let Some(row) = row else {
                            return Ok(false);
                        };
                        let mut record = $decode(&row)?;
                        if change.apply(&mut record) {
                            record.id = *id;
                            bind_record(query(&self.sql.write_back), &record)
                                .execute(&mut *tx)
                                .await
                                .map_err(failed())?;
                            tx.commit().await.map_err(failed())?;
                        }
                        Ok(true)
                    })
                    .await
                }

                async fn rotate(
                    &self,
                    id: &TokenId,
                    change: &mut Change<'_>,
                    successor: &TokenRecord,
                ) -> Result<bool, StoreError> {
                    let rotated = self.rotate_under(id, change, successor, None).await?;
                    Ok(rotated.is_some())
                }

                async fn rotate_capped(
                    &self,
                    id: &TokenId,
                    change: &mut Change<'_>,
                    successor: &TokenRecord,
                    cap: u32,
                    now: OffsetDateTime,
                ) -> Result<Option<bool>, StoreError> {
                    self.rotate_under(id, change, successor, Some((cap, now)))
                        .await
                }

                async fn revoke_all(&self, all: &RevokeAll<'_>) -> Result<u64, StoreError> {
                    let failed = || $error("could not revoke the owner's tokens");
                    within(self.deadline, async {
                        let mut tx = $begin(&self.pool, self.deadline).await.map_err(failed())?;
                        $lock_owner(&mut tx, &self.owner_key(all.prefix, all.owner))
                            .await
                            .map_err(failed())?;
                        let sql = match all.tenant {
                            None => &self.sql.revoke_all,
                            Some(_) => &self.sql.revoke_all_tenant,
                        };
                        let mut statement = query(sql)
                            .bind(all.owner)
                            .bind(all.prefix)
                            .bind($to_db(all.at))
                            .bind(all.reason);
                        if let Some(tenant) = all.tenant {
                            statement = statement.bind(tenant);
                        }
                        let done = statement.execute(&mut *tx).await.map_err(failed())?;
                        tx.commit().await.map_err(failed())?;
                        Ok(done.rows_affected())
                    })
                    .await
                }

                async fn revoke_descendants(
                    &self,
                    of: &TokenId,
                    all: &RevokeAll<'_>,
                ) -> Result<u64, StoreError> {
                    let failed = || $error("could not revoke the tokens this one created");
                    within(self.deadline, async {
                        let mut tx = $begin(&self.pool, self.deadline).await.map_err(failed())?;
                        $lock_owner(&mut tx, &self.owner_key(all.prefix, all.owner))
                            .await
                            .map_err(failed())?;
                        let done = query(&self.sql.revoke_descendants)
                            .bind(of.as_bytes().as_slice())
                            .bind(all.owner)
                            .bind(all.prefix)
                            .bind($to_db(all.at))
                            .bind(all.reason)
                            .execute(&mut *tx)
                            .await
                            .map_err(failed())?;
                        tx.commit().await.map_err(failed())?;
                        Ok(done.rows_affected())
                    })
                    .await
                }

                async fn consume_use(
                    &self,
                    id: &TokenId,
                    now: OffsetDateTime,
                ) -> Result<UseOutcome, StoreError> {
                    use $crate::record::RefillInterval;
                    within(self.deadline, async {
                        // One statement: a conditional decrement, which the database
                        // serialises per row (of racing calls for the last use, one
                        // matches).
                        let left: Option<i64> =
                            sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.sql.consume_use)))
                                .bind(id.as_bytes().as_slice())
                                .bind($to_db(RefillInterval::Daily.period_start(now)))
                                .bind($to_db(RefillInterval::Monthly.period_start(now)))
                                .fetch_optional(&self.pool)
                                .await
                                .map_err($error("could not count the token's use"))?;
                        Ok(match left {
                            Some(left) => UseOutcome::Consumed {
                                remaining: u64::try_from(left).unwrap_or_default(),
                            },
                            // No row matched: out of uses, or not counting them.
                            None => UseOutcome::Exhausted,
                        })
                    })
                    .await
                }

                async fn update_descendants(
                    &self,
                    which: &Descendants<'_>,
                    change: &mut Change<'_>,
                ) -> Result<u64, StoreError> {
                    let failed = || $error("could not change the tokens this one created");
                    within(self.deadline, async {
                        let mut tx = $begin(&self.pool, self.deadline).await.map_err(failed())?;
                        $lock_owner(&mut tx, &self.owner_key(which.prefix, which.owner))
                            .await
                            .map_err(failed())?;
                        let ids: Vec<Vec<u8>> =
                            sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.sql.descendants)))
                                .bind(which.of.as_bytes().as_slice())
                                .bind(which.owner)
                                .bind(which.prefix)
                                .fetch_all(&mut *tx)
                                .await
                                .map_err(failed())?;
                        let mut written = 0;
                        for id in ids {
                            let row = query(&self.sql.get_for_update)
                                .bind(id.as_slice())
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(failed())?;
                            let Some(row) = row else { continue };
                            let mut record = $decode(&row)?;
                            let kept = record.id;
                            if change.apply(&mut record) {
                                record.id = kept;
                                bind_record(query(&self.sql.write_back), &record)
                                    .execute(&mut *tx)
                                    .await
                                    .map_err(failed())?;
                                written += 1;
                            }
                        }
                        tx.commit().await.map_err(failed())?;
                        Ok(written)
                    })
                    .await
                }

                async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
                    within(self.deadline, async {
                        let done = query(&self.sql.purge)
                            .bind($to_db(before))
                            .execute(&self.pool)
                            .await
                            .map_err($error("could not purge tokens"))?;
                        Ok(done.rows_affected())
                    })
                    .await
                }
            }
        };
    };
}
pub(crate) use impl_sql_token_store;
