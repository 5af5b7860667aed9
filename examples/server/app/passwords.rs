//! Password checks on a fixed set of threads, each with its own Argon2 memory.
//!
//! Argon2 (the `password-auth` default: 19 MiB, 2 passes) is memory-hard on purpose. Run on
//! the runtime's blocking pool, a flood of logins spread it over dozens of threads, each of
//! which left its 19 MiB with the allocator: 14.5 GB in 23 s. Here `PASSWORD_HASHERS`
//! threads (the cores, by default) each allocate their working memory once and reuse it, so
//! password checking never holds more than `PASSWORD_HASHERS × 19 MiB`, and never gives it
//! to the allocator to keep. A check waits for a thread at most `PASSWORD_QUEUE_TIMEOUT_MS`;
//! past that the login is answered 503 with `Retry-After`.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{Semaphore, oneshot};
use zeroize::Zeroizing;

/// Every hasher is busy and stayed busy for the whole queue timeout.
#[derive(Debug, Clone, Copy)]
pub struct Busy;

struct Job {
    password: Zeroizing<String>,
    hash: Arc<str>,
    reply: oneshot::Sender<bool>,
}

/// The password checkers.
pub struct Passwords {
    jobs: SyncSender<Job>,
    permits: Semaphore,
    queue_timeout: Duration,
}

impl Passwords {
    /// `hashers` threads; a check waits at most `queue_timeout` for one.
    pub fn new(hashers: usize, queue_timeout: Duration) -> Self {
        let hashers = hashers.max(1);
        let (jobs, queue) = sync_channel::<Job>(hashers);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..hashers {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || work(&queue))
                .expect("start a password thread");
        }
        Self {
            jobs,
            permits: Semaphore::new(hashers),
            queue_timeout,
        }
    }

    /// Whether `password` matches the PHC string `hash`; `Err(Busy)` if no hasher was free
    /// within the queue timeout.
    pub async fn verify(&self, password: Zeroizing<String>, hash: Arc<str>) -> Result<bool, Busy> {
        let permit = tokio::time::timeout(self.queue_timeout, self.permits.acquire())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        let (reply, answer) = oneshot::channel();
        // Never blocks: the channel holds as many jobs as there are permits.
        self.jobs
            .try_send(Job {
                password,
                hash,
                reply,
            })
            .map_err(|_| Busy)?;
        let matched = answer.await.unwrap_or(false);
        drop(permit);
        Ok(matched)
    }
}

/// A hasher thread: take jobs until the sender is gone, reusing one memory buffer.
fn work(queue: &Mutex<Receiver<Job>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = match queue.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let matched = check(&job.password, &job.hash, &mut memory);
        let _ = job.reply.send(matched);
    }
}

/// Verify `password` against an Argon2 PHC string with caller-owned memory. Anything that
/// is not a well-formed Argon2 hash does not match.
fn check(password: &str, phc: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Some(expected), Some(salt)) =
        (Algorithm::try_from(hash.algorithm), hash.hash, hash.salt)
    else {
        return false;
    };
    let version = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let (Ok(version), Ok(params)) = (version, Params::try_from(&hash)) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    // Bounded by the hashes this server made itself; never more than 64 MiB.
    let blocks = params.block_count();
    if blocks > 64 * 1024 {
        return false;
    }
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..blocks])
        .is_err()
    {
        return false;
    }
    // `Output`'s equality is constant-time.
    argon2::password_hash::Output::new(&out).is_ok_and(|out| out == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_password_auth() {
        let hash = password_auth::generate_hash("correct horse");
        let mut memory = Vec::new();
        assert!(check("correct horse", &hash, &mut memory));
        assert!(!check("wrong horse", &hash, &mut memory));
        assert!(!check("correct horse", "not a hash", &mut memory));
        assert!(password_auth::verify_password("correct horse", &hash).is_ok());
    }
}
