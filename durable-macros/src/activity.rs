//! `#[activity]`: parse the options and the function, check its signature, expand.

use proc_macro2::TokenStream;
use quote::quote;

use crate::diag::{fallback, Errors};
use crate::kind::Kind;
use crate::{expand, options, signature};

pub(crate) fn activity(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = options::parse(Kind::Activity, args, &mut errors);
    let function = match signature::parse_item(Kind::Activity, item.clone()) {
        Ok(function) => function,
        Err(error) => {
            errors.push(error);
            return fallback(errors, item);
        }
    };
    match signature::validate(Kind::Activity, &function, &mut errors) {
        // Option errors do not stop the expansion (the option falls back to its default), so
        // that code using the activity does not pile up follow-on errors.
        Some(sig) => {
            let expanded = expand::expand(Kind::Activity, &sig, &options);
            let errors = errors.into_compile_errors();
            quote!(#errors #expanded)
        }
        None => fallback(errors, item),
    }
}
