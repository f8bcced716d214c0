//! Bounds of one chain's mempool.

use dualchain_core::types::TxPayload;
use dualchain_core::types::tx_limits::{MAX_ATTEST_TX_BYTES, MAX_TX_BYTES};

/// Limits of a mempool. All bounds are hard: admission refuses what would exceed them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Pending transactions, all senders together.
    pub max_txs: usize,
    /// Encoded bytes of all pending transactions together.
    pub max_bytes: usize,
    /// Pending transactions of one sender: what keeps one flooding sender from
    /// taking the whole pool.
    pub max_per_sender: usize,
    /// How far ahead of a sender's next nonce (on the committed state) admission
    /// accepts a nonce: room for what a sender has in flight through the pool and
    /// consensus, while a far-future nonce, which could only fail, is refused.
    pub max_nonce_ahead: u64,
    /// Encoded size of one transaction (the protocol limit by default).
    pub max_tx_bytes: usize,
    /// Encoded size of one attestation transaction, which carries a quorum
    /// certificate (the protocol limit by default).
    pub max_attest_tx_bytes: usize,
    /// Digests of proposed or included transactions remembered to refuse replays.
    pub recent_capacity: usize,
    /// Lock shards (a power of two); more shards, less contention between producers.
    pub shards: usize,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        Self {
            max_txs: 500_000,
            max_bytes: 512 * 1024 * 1024,
            max_per_sender: 4_096,
            max_nonce_ahead: 16_384,
            max_tx_bytes: MAX_TX_BYTES,
            max_attest_tx_bytes: MAX_ATTEST_TX_BYTES,
            recent_capacity: 1 << 20,
            shards: 64,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("mempool limit `{0}` must be at least 1")]
    Zero(&'static str),
    #[error("mempool shards must be a power of two between 1 and 4096, got {0}")]
    Shards(usize),
    #[error(
        "{name} {max_tx_bytes} is larger than the whole pool's max_bytes {max_bytes}: no transaction of that size could ever be admitted"
    )]
    TxLargerThanPool {
        name: &'static str,
        max_tx_bytes: usize,
        max_bytes: usize,
    },
}

impl MempoolConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("max_txs", self.max_txs),
            ("max_bytes", self.max_bytes),
            ("max_per_sender", self.max_per_sender),
            ("max_tx_bytes", self.max_tx_bytes),
            ("max_attest_tx_bytes", self.max_attest_tx_bytes),
            ("recent_capacity", self.recent_capacity),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.max_nonce_ahead == 0 {
            return Err(ConfigError::Zero("max_nonce_ahead"));
        }
        if !self.shards.is_power_of_two() || self.shards > 4096 {
            return Err(ConfigError::Shards(self.shards));
        }
        for (name, max_tx_bytes) in [
            ("max_tx_bytes", self.max_tx_bytes),
            ("max_attest_tx_bytes", self.max_attest_tx_bytes),
        ] {
            if max_tx_bytes > self.max_bytes {
                return Err(ConfigError::TxLargerThanPool {
                    name,
                    max_tx_bytes,
                    max_bytes: self.max_bytes,
                });
            }
        }
        Ok(())
    }

    /// The size limit of one transaction of `payload`'s kind.
    pub fn max_tx_bytes_of(&self, payload: &TxPayload) -> usize {
        if payload.max_encoded_len() > MAX_TX_BYTES {
            self.max_attest_tx_bytes
        } else {
            self.max_tx_bytes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_configs_are_refused() {
        MempoolConfig::default().validate().unwrap();
        let zero = MempoolConfig {
            max_per_sender: 0,
            ..MempoolConfig::default()
        };
        assert_eq!(zero.validate(), Err(ConfigError::Zero("max_per_sender")));
        let shards = MempoolConfig {
            shards: 3,
            ..MempoolConfig::default()
        };
        assert_eq!(shards.validate(), Err(ConfigError::Shards(3)));
        let tx_too_big = MempoolConfig {
            max_bytes: 10,
            max_tx_bytes: 11,
            max_attest_tx_bytes: 10,
            ..MempoolConfig::default()
        };
        assert!(matches!(
            tx_too_big.validate(),
            Err(ConfigError::TxLargerThanPool {
                name: "max_tx_bytes",
                ..
            })
        ));
        let attest_too_big = MempoolConfig {
            max_bytes: MAX_TX_BYTES,
            ..MempoolConfig::default()
        };
        assert!(matches!(
            attest_too_big.validate(),
            Err(ConfigError::TxLargerThanPool {
                name: "max_attest_tx_bytes",
                ..
            })
        ));
    }
}
