//! The WHO Trust Network Gateway as a Trusted Party sees it (contract:
//! `shared/contracts/gateway.md`), pure parts: trusted-reference records and the plan
//! that publishes, updates and deletes them; the CMS upload envelope signed through a
//! `Signer` (so the TNP UP key may live in Vault).
//!
//! Architecture invariant: no sockets here. The HTTP client (mTLS, outbox, retries)
//! lives in the mediator and calls these functions.

pub mod cms_sign;
pub mod reference;
pub mod trustlist;
