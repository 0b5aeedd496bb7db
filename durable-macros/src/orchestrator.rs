//! `#[orchestrator]`: parse the options and the function, check its signature, lint its body, expand.

use proc_macro2::TokenStream;
use quote::quote;

use crate::diag::{fallback, Errors};
use crate::kind::Kind;
use crate::{expand, lint, options, signature};

pub(crate) fn orchestrator(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = options::parse(Kind::Orchestrator, args, &mut errors);
    let function = match signature::parse_item(Kind::Orchestrator, item.clone()) {
        Ok(function) => function,
        Err(error) => {
            errors.push(error);
            return fallback(errors, item);
        }
    };
    let sig = signature::validate(Kind::Orchestrator, &function, &mut errors);
    lint::check(&function.block, &options.allow, &mut errors);
    match sig {
        // Lint and option errors do not stop the expansion, so that code registering or
        // starting the orchestrator does not pile up follow-on errors.
        Some(sig) => {
            let expanded = expand::expand(Kind::Orchestrator, &sig, &options);
            let errors = errors.into_compile_errors();
            quote!(#errors #expanded)
        }
        None => fallback(errors, item),
    }
}
