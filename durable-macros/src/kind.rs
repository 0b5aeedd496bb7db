//! Which of the two macros is being expanded, and what that changes in messages and paths.

/// The macro being expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Activity,
    Orchestrator,
}

impl Kind {
    /// The attribute as the user writes it, for messages.
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            Kind::Activity => "#[activity]",
            Kind::Orchestrator => "#[orchestrator]",
        }
    }

    /// The runtime trait the macro implements.
    pub(crate) fn trait_name(self) -> &'static str {
        match self {
            Kind::Activity => "Activity",
            Kind::Orchestrator => "Orchestrator",
        }
    }

    /// The context type the function takes first.
    pub(crate) fn context(self) -> &'static str {
        match self {
            Kind::Activity => "ActivityContext",
            Kind::Orchestrator => "OrchestrationContext",
        }
    }
}
