//! `[policy] bundle_url`: the gateway serves the fleet's signed bundle, not a local directory.
//! Before the gateway starts, the bundle is fetched, verified and unpacked, and `dir` pointed
//! at it; then a thread polls for a new one and swaps it in through the policy store's reload
//! (its compile-and-test gate). Anything refused — unreachable, badly signed, failing its
//! tests — is logged and counted as a failed reload, and the old revision keeps serving.

use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::policy::PolicyStore;
use crate::supply::policy_bundle::{BundleError, Subscription};
use crate::supply::{Fetcher, Requirement};

/// Subscribes to `config.policy.bundle_url`, if set, and points `config.policy.dir` at the
/// verified first bundle; the gateway refuses to start without one.
pub fn subscribe(config: &mut Config) -> anyhow::Result<Option<Subscription>> {
    let Some(url) = config.policy.bundle_url.clone() else {
        return Ok(None);
    };
    if let Some(dir) = &config.policy.dir {
        anyhow::bail!(
            "[policy] gives both dir = {:?} and bundle_url = {url:?} (or --policies was given): serve one of them",
            dir.display().to_string()
        );
    }
    let signature = config.supply_chain.signature.as_ref().with_context(|| {
        format!(
            "[policy] bundle_url = {url:?} needs [supply_chain.signature] (a key, or a keyless identity) to verify the bundle with"
        )
    })?;
    let requirement = Requirement::from_config(signature)?;
    let cache = config.cache.resolved_dir();
    let state_dir = config
        .policy
        .bundle_state_dir
        .clone()
        .or_else(|| cache.as_ref().map(|dir| dir.join("policy-bundle")))
        .context("no directory for the policy bundle: give [policy] bundle_state_dir")?;
    let fetcher = Fetcher::new(&config.supply_chain, None).with_ca_file(
        config
            .policy
            .bundle_ca
            .clone()
            .or_else(|| config.supply_chain.ca_file.clone()),
    );
    let mut subscription = Subscription::new(&url, requirement, fetcher, state_dir)?;
    let first = subscription
        .poll()?
        .with_context(|| format!("{url}: no policy bundle"))?;
    // The store's load, right after, is the gate for the first bundle.
    subscription.activate(first, || Ok(String::new()))?;
    config.policy.dir = Some(subscription.serving_dir());
    Ok(Some(subscription))
}

/// Polls every `config.policy.bundle_poll_secs` on a thread of its own (downloads block),
/// swapping each new bundle into `store`. Runs as long as the process.
pub fn poll(mut subscription: Subscription, store: PolicyStore, config: &Config) {
    let interval = Duration::from_secs(config.policy.bundle_poll_secs().max(1));
    let spawned = std::thread::Builder::new()
        .name("policy-bundle".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                match subscription.poll() {
                    Ok(None) => {}
                    Ok(Some(new)) => {
                        let digest = new.digest.clone();
                        match subscription
                            .activate(new, || store.reload().map_err(|e| e.to_string()))
                        {
                            Ok(revision) => {
                                tracing::info!(%digest, %revision, "serving the fleet's policy bundle")
                            }
                            // Refused by the gate: logged and counted by `reload` itself.
                            Err(BundleError::Refused { .. }) => {}
                            Err(error) => store.refused(&error),
                        }
                    }
                    Err(error) => store.refused(&error),
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start polling the policy bundle; the current one keeps serving");
    }
}
