//! Name → type-erased function: how a name in the history finds the code to run.

use std::collections::BTreeMap;

use foldhash::HashMap;
use std::sync::Arc;

use futures::future::{self, BoxFuture, FutureExt};
use serde_json::Value;
use tracing::Instrument;

use crate::activity::ActivityContext;
use crate::callable::{Activity, Orchestrator, Seal};
use crate::history::{kinds, Failure};
use crate::orchestration::OrchestrationContext;

pub(crate) type ErasedFuture = BoxFuture<'static, Result<Value, Failure>>;
pub(crate) type OrchestratorFn =
    Arc<dyn Fn(OrchestrationContext, Value) -> ErasedFuture + Send + Sync>;
pub(crate) type ActivityFn = Arc<dyn Fn(ActivityContext, Value) -> ErasedFuture + Send + Sync>;

/// Two functions registered under one durable name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} `{name}`{version} is registered twice: give one of them another name with `name = \"..\"`")]
pub struct DuplicateRegistration {
    kind: &'static str,
    name: String,
    version: String,
}

#[derive(Default, Clone)]
pub(crate) struct Registry {
    orchestrators: HashMap<String, BTreeMap<u32, OrchestratorFn>>,
    activities: HashMap<String, ActivityFn>,
}

impl Registry {
    pub(crate) fn add_orchestrator<O: Orchestrator>(
        &mut self,
    ) -> Result<(), DuplicateRegistration> {
        let versions = self.orchestrators.entry(O::NAME.to_string()).or_default();
        if versions.contains_key(&O::VERSION) {
            return Err(DuplicateRegistration {
                kind: "orchestrator",
                name: O::NAME.into(),
                version: format!(" (version {})", O::VERSION),
            });
        }
        versions.insert(O::VERSION, Arc::new(run_orchestrator::<O>));
        Ok(())
    }

    pub(crate) fn add_activity<A: Activity>(&mut self) -> Result<(), DuplicateRegistration> {
        if self.activities.contains_key(A::NAME) {
            return Err(DuplicateRegistration {
                kind: "activity",
                name: A::NAME.into(),
                version: String::new(),
            });
        }
        self.activities
            .insert(A::NAME.to_string(), Arc::new(run_activity::<A>));
        Ok(())
    }

    pub(crate) fn orchestrator(&self, name: &str, version: u32) -> Option<&OrchestratorFn> {
        self.orchestrators.get(name)?.get(&version)
    }

    /// The newest version registered under `name`.
    pub(crate) fn latest_version(&self, name: &str) -> Option<u32> {
        self.orchestrators.get(name)?.keys().next_back().copied()
    }

    pub(crate) fn activity(&self, name: &str) -> Option<&ActivityFn> {
        self.activities.get(name)
    }
}

fn bad_input(kind: &str, name: &str, expected: &str, error: serde_json::Error) -> ErasedFuture {
    let failure = Failure::new(
        kinds::BAD_PAYLOAD,
        format!("the input of {kind} `{name}` does not deserialise into `{expected}`: {error}"),
    );
    future::ready(Err(failure)).boxed()
}

fn encode_output<T: serde::Serialize>(kind: &str, name: &str, output: T) -> Result<Value, Failure> {
    serde_json::to_value(output).map_err(|e| {
        Failure::new(
            kinds::BAD_PAYLOAD,
            format!("the output of {kind} `{name}` does not serialise: {e}"),
        )
    })
}

fn run_orchestrator<O: Orchestrator>(ctx: OrchestrationContext, input: Value) -> ErasedFuture {
    let input: O::Input = match serde_json::from_value(input) {
        Ok(input) => input,
        Err(e) => {
            return bad_input(
                "orchestrator",
                O::NAME,
                std::any::type_name::<O::Input>(),
                e,
            )
        }
    };
    let span = tracing::info_span!(
        "orchestration",
        instance_id = %ctx.lock().instance_id(),
        name = O::NAME,
    );
    let run = O::__invoke(ctx, input, Seal::new());
    async move {
        match run.await {
            Ok(output) => encode_output("orchestrator", O::NAME, output),
            Err(error) => Err(Failure::from_error(&error)),
        }
    }
    .instrument(span)
    .boxed()
}

fn run_activity<A: Activity>(ctx: ActivityContext, input: Value) -> ErasedFuture {
    let input: A::Input = match serde_json::from_value(input) {
        Ok(input) => input,
        Err(e) => return bad_input("activity", A::NAME, std::any::type_name::<A::Input>(), e),
    };
    let span = tracing::info_span!(
        "activity",
        instance_id = %ctx.instance_id(),
        name = A::NAME,
        attempt = ctx.attempt(),
    );
    let run = A::__invoke(ctx, input, Seal::new());
    async move {
        match run.await {
            Ok(output) => encode_output("activity", A::NAME, output),
            Err(error) => Err(Failure::from_error(&error)),
        }
    }
    .instrument(span)
    .boxed()
}
