//! Engine failures as capability errors: retryable when a later try may
//! succeed (the server did not answer, or answered with a status a server
//! gives while overloaded or restarting), fatal otherwise. The one mapping
//! the policy, the reasoning generator and the judge use, so a server that
//! went away is re-issued the same way in every role.

use actors::capability::CapabilityError;

use super::client::ClientError;

/// `what: e` as a capability error; retryable when a [`ClientError`] in
/// `e`'s chain is ([`ClientError::retryable`]).
pub fn from_anyhow(what: impl std::fmt::Display, e: &anyhow::Error) -> CapabilityError {
    let retry = e.chain().any(|c| c.downcast_ref::<ClientError>().is_some_and(ClientError::retryable));
    build(retry, format!("{what}: {e:#}"))
}

/// `what: e` for one request's failure, retryable as `e` is.
pub fn from_client(what: impl std::fmt::Display, e: &ClientError) -> CapabilityError {
    build(e.retryable(), format!("{what}: {e}"))
}

fn build(retry: bool, what: String) -> CapabilityError {
    if retry {
        CapabilityError::retryable(what)
    } else {
        CapabilityError::fatal(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn only_an_unanswered_server_is_retried() {
        let down = ClientError::Unreachable {
            url: "http://127.0.0.1:9/v1/completions".into(),
            tries: 3,
            last: "connection refused".into(),
        };
        let wrapped = Err::<(), _>(down).context("serving checkpoint ab").unwrap_err();
        let e = from_anyhow("sample s", &wrapped);
        assert!(e.retryable, "{}", e.what);
        assert!(e.what.contains("sample s: serving checkpoint ab") && e.what.contains("127.0.0.1:9"), "{}", e.what);
        let plain = anyhow::anyhow!("no tokenizer.json");
        assert!(!from_anyhow("loading", &plain).retryable);
        let refused = ClientError::Status { url: "u".into(), status: 400, tries: 1, excerpt: "bad".into() };
        assert!(!from_client("sample s", &refused).retryable);
    }
}
