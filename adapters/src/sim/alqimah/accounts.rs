//! Agent accounts of the Al-Qimah simulator: login, access tokens and balances, without
//! HTTP. Methods take `now`.

use std::collections::HashMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use crate::alqimah::login_token;

/// Most access tokens kept; beyond it the one expiring first is forgotten.
pub const MAX_TOKENS: usize = 10_000;

/// How long an expired token is still recognised as "expired" (rather than "invalid").
const EXPIRED_MEMORY: Duration = Duration::from_secs(3600);

/// One agent account.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub user_name: String,
    /// The login `Token` this account's credentials produce.
    pub login_token: SecretString,
    pub balance: u64,
}

#[derive(Debug, Clone)]
struct IssuedToken {
    account: String,
    expires_at: Instant,
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenRefusal {
    Missing,
    Unknown,
    Expired,
}

#[derive(Debug)]
pub(crate) struct AccountBook {
    accounts: HashMap<String, Account>,
    tokens: HashMap<String, IssuedToken>,
    rng: StdRng,
}

impl AccountBook {
    pub fn new(seed: u64) -> Self {
        Self {
            accounts: HashMap::new(),
            tokens: HashMap::new(),
            rng: StdRng::seed_from_u64(seed ^ 0x5eed_a141),
        }
    }

    pub fn add(
        &mut self,
        account_number: &str,
        user_name: &str,
        password: &SecretString,
        api_token: &SecretString,
        balance: u64,
    ) {
        self.accounts.insert(
            account_number.to_owned(),
            Account {
                user_name: user_name.to_owned(),
                login_token: login_token(user_name, account_number, password, api_token),
                balance,
            },
        );
    }

    /// Checks a login; on success issues an access token living `lifetime`.
    pub fn login(
        &mut self,
        account_number: &str,
        user_name: &str,
        token: &str,
        now: Instant,
        lifetime: Duration,
    ) -> Option<String> {
        let account = self.accounts.get(account_number)?;
        let token_ok = bool::from(
            account
                .login_token
                .expose_secret()
                .as_bytes()
                .ct_eq(token.as_bytes()),
        );
        if account.user_name != user_name || !token_ok {
            return None;
        }
        self.tokens
            .retain(|_, t| t.expires_at + EXPIRED_MEMORY > now);
        while self.tokens.len() >= MAX_TOKENS {
            let Some(first) = self
                .tokens
                .iter()
                .min_by_key(|(_, t)| t.expires_at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.tokens.remove(&first);
        }
        let access = loop {
            let bytes: [u8; 20] = self.rng.random();
            let candidate: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            if !self.tokens.contains_key(&candidate) {
                break candidate;
            }
        };
        self.tokens.insert(
            access.clone(),
            IssuedToken {
                account: account_number.to_owned(),
                expires_at: now + lifetime,
            },
        );
        Some(access)
    }

    /// The account an access token belongs to, if it is valid at `now`.
    pub fn authenticate(&self, token: Option<&str>, now: Instant) -> Result<String, TokenRefusal> {
        let token = token.ok_or(TokenRefusal::Missing)?;
        let issued = self.tokens.get(token).ok_or(TokenRefusal::Unknown)?;
        if now >= issued.expires_at {
            return Err(TokenRefusal::Expired);
        }
        Ok(issued.account.clone())
    }

    /// Every issued token expires now (a server-side revocation or clock jump).
    pub fn expire_all(&mut self, now: Instant) {
        for t in self.tokens.values_mut() {
            t.expires_at = t.expires_at.min(now);
        }
    }

    pub fn balance(&self, account_number: &str) -> Option<u64> {
        self.accounts.get(account_number).map(|a| a.balance)
    }

    pub fn set_balance(&mut self, account_number: &str, balance: u64) -> bool {
        match self.accounts.get_mut(account_number) {
            Some(a) => {
                a.balance = balance;
                true
            }
            None => false,
        }
    }

    /// Takes `price` from the account; `None` (nothing taken) when it does not cover it.
    pub fn debit(&mut self, account_number: &str, price: u64) -> Option<u64> {
        let account = self.accounts.get_mut(account_number)?;
        account.balance = account.balance.checked_sub(price)?;
        Some(account.balance)
    }

    /// Gives `amount` back (a refund).
    pub fn credit(&mut self, account_number: &str, amount: u64) {
        if let Some(a) = self.accounts.get_mut(account_number) {
            a.balance = a.balance.saturating_add(amount);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> AccountBook {
        let mut book = AccountBook::new(1);
        book.add(
            "1000001",
            "agent",
            &SecretString::from("pw"),
            &SecretString::from("api"),
            500,
        );
        book
    }

    fn good_token() -> String {
        login_token(
            "agent",
            "1000001",
            &SecretString::from("pw"),
            &SecretString::from("api"),
        )
        .expose_secret()
        .to_owned()
    }

    #[test]
    fn login_checks_the_md5_token_and_user_name() {
        let mut b = book();
        let t0 = Instant::now();
        let life = Duration::from_secs(60);
        assert!(
            b.login("1000001", "agent", &good_token(), t0, life)
                .is_some()
        );
        assert!(
            b.login("1000001", "agent", &good_token().to_uppercase(), t0, life)
                .is_none()
        );
        assert!(
            b.login("1000001", "other", &good_token(), t0, life)
                .is_none()
        );
        assert!(
            b.login("1000002", "agent", &good_token(), t0, life)
                .is_none()
        );
        let wrong_password = login_token(
            "agent",
            "1000001",
            &SecretString::from("PW"),
            &SecretString::from("api"),
        );
        assert!(
            b.login("1000001", "agent", wrong_password.expose_secret(), t0, life)
                .is_none()
        );
    }

    #[test]
    fn tokens_expire_and_can_be_expired() {
        let mut b = book();
        let t0 = Instant::now();
        let life = Duration::from_secs(60);
        let token = b
            .login("1000001", "agent", &good_token(), t0, life)
            .unwrap();
        assert_eq!(b.authenticate(Some(&token), t0).unwrap(), "1000001");
        assert_eq!(
            b.authenticate(Some(&token), t0 + life),
            Err(TokenRefusal::Expired)
        );
        assert_eq!(b.authenticate(Some("nope"), t0), Err(TokenRefusal::Unknown));
        assert_eq!(b.authenticate(None, t0), Err(TokenRefusal::Missing));
        let fresh = b
            .login("1000001", "agent", &good_token(), t0, life)
            .unwrap();
        assert_ne!(fresh, token);
        b.expire_all(t0);
        assert_eq!(b.authenticate(Some(&fresh), t0), Err(TokenRefusal::Expired));
    }

    #[test]
    fn balances_are_debited_and_refunded() {
        let mut b = book();
        assert_eq!(b.debit("1000001", 200), Some(300));
        assert_eq!(b.debit("1000001", 301), None);
        assert_eq!(b.balance("1000001"), Some(300));
        b.credit("1000001", 200);
        assert_eq!(b.balance("1000001"), Some(500));
        assert!(!b.set_balance("nope", 1));
        assert_eq!(b.debit("nope", 1), None);
    }
}
