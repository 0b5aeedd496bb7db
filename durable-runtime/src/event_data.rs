//! `EventData`: what the data of an external event can be read as, and the error that names
//! the missing type when a wait leaves it out.

use serde::de::DeserializeOwned;

/// A type the data of an external event can be decoded into: any type that implements
/// `serde::Deserialize` and owns its data. [`wait_for_event`] requires it.
///
/// The type is inferred from how the result is used, as in
/// `let carrier: String = ctx.wait_for_event("shipped").await?;`. When nothing uses the
/// result (`ctx.wait_for_event("shipped").await?;`), nothing names the type either; write it:
/// `ctx.wait_for_event::<Shipment>("shipped")`.
///
/// # Events without data
///
/// An event raised with `()` as its data carries `null`, and `wait_for_event::<()>` waits for
/// it (any other data fails the wait with [`TaskError::BadPayload`], like any type mismatch).
/// To wait for an event whatever its data, and ignore the data, use `serde::de::IgnoredAny`.
///
/// ```
/// use std::time::Duration;
/// use durable_runtime::{orchestrator, OrchestrationContext, Runtime, RuntimeStatus, TaskError};
/// use serde::de::IgnoredAny;
///
/// #[orchestrator]
/// async fn handshake(ctx: OrchestrationContext) -> Result<(), TaskError> {
///     ctx.wait_for_event::<()>("ready").await?; // raised with `()`
///     ctx.wait_for_event::<IgnoredAny>("go").await?; // raised with anything
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = Runtime::builder().orchestrator(handshake).start()?;
/// let client = runtime.client();
/// let id = client.start(handshake, ()).await?;
/// client.raise_event(&id, "ready", ()).await?;
/// client.raise_event(&id, "go", serde_json::json!({"by": "ops", "at": 5})).await?;
/// let status = client.wait_for_completion(&id, Duration::from_secs(5)).await?;
/// assert_eq!(status.runtime_status, RuntimeStatus::Completed);
/// # runtime.shutdown().await;
/// # Ok(())
/// # }
/// ```
///
/// The macro `#[orchestrator]` rejects, in both editions, a wait in its body whose result is
/// dropped without a named type: under edition 2021 the compiler would pick `()` for it.
///
/// [`TaskError::BadPayload`]: crate::TaskError::BadPayload
/// [`wait_for_event`]: crate::OrchestrationContext::wait_for_event
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot hold an event's data: no type was named, or it is not a `Deserialize` type that owns its data",
    label = "the type of the event's data",
    note = "`!` means that no type was named: nothing in `ctx.wait_for_event(name).await?;` says which type the data has; name it, `ctx.wait_for_event::<Shipment>(name)`, or give the result a type, `let shipment: Shipment = ctx.wait_for_event(name).await?;`",
    note = "a type holds an event's data when it implements `serde::Deserialize` (`#[derive(serde::Deserialize)]`) and owns its data (`String`, not `&str`); wait with `::<()>` for an event raised without data, or `::<serde::de::IgnoredAny>` to ignore whatever data it has"
)]
pub trait EventData: DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: DeserializeOwned> EventData for T {}
