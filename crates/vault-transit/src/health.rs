/// What `sys/health` says, plus whether the signer holds a live token: the
/// mediator's `/ready` is red unless [`Health::is_ready`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub reachable: bool,
    pub initialized: bool,
    pub sealed: bool,
    pub standby: bool,
    pub version: Option<String>,
    /// The signer has a token that has not expired (AppRole: logged in).
    pub authenticated: bool,
    /// Why the probe failed, when it did.
    pub error: Option<String>,
}

impl Health {
    pub fn is_ready(&self) -> bool {
        self.reachable && self.initialized && !self.sealed && self.authenticated
    }
}
