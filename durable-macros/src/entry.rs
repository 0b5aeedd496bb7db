//! The one entry of both attribute macros: parse the options and the function, validate, expand.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};

use crate::diag::{fallback, Errors};
use crate::kind::Kind;
use crate::{event_types, expand, lint, options, signature};

/// Expands `#[activity(args)]` or `#[orchestrator(args)]` on `item`.
pub(crate) fn attribute(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = options::parse(kind, args, &mut errors);
    let mut function = match signature::parse_item(kind, item.clone()) {
        Ok(function) => function,
        Err(error) => {
            errors.push(error);
            return fallback(errors, item);
        }
    };
    // The one difference between the two: an orchestrator's body is replayed, so it is linted,
    // and its event waits are checked for a data type.
    if kind == Kind::Orchestrator {
        event_types::check(&mut function, &mut errors);
        lint::check(&function.block, &options.allow, &mut errors);
    }
    let sig = signature::validate(kind, &options, &function, &mut errors);
    match sig {
        // Lint and option errors do not stop the expansion (an option in error falls back to
        // its default), so that code using the function does not pile up follow-on errors.
        Some(sig) => {
            let expanded = expand::expand(kind, &sig, &options);
            let errors = errors.into_compile_errors();
            quote!(#errors #expanded)
        }
        None => fallback(errors, function.into_token_stream()),
    }
}
