//! Collecting every spanned error of one expansion, so the user sees them all at once.

use std::fmt::Display;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;

/// The errors found so far, folded into one `syn::Error` that renders as several
/// `compile_error!`s.
#[derive(Default)]
pub(crate) struct Errors {
    combined: Option<syn::Error>,
    count: usize,
}

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.count += 1;
        match &mut self.combined {
            Some(combined) => combined.combine(error),
            None => self.combined = Some(error),
        }
    }

    /// An error covering `tokens` (from their first to their last token).
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn at(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    /// How many errors were pushed, to tell whether a step found any.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    pub(crate) fn into_compile_errors(self) -> TokenStream {
        self.combined
            .map(|error| error.to_compile_error())
            .unwrap_or_default()
    }
}

/// The user's item, unchanged, beside the errors: the IDE and the rest of the crate keep
/// working on it. Warnings about its unused variables (often those of a half-written
/// function) would only bury the error to fix first.
pub(crate) fn fallback(errors: Errors, item: TokenStream) -> TokenStream {
    let errors = errors.into_compile_errors();
    quote::quote!(#errors #[allow(unused_variables)] #item)
}

/// Tokens as a user would write them, for messages: `a: (u32, String)` rather than the
/// token printer's `a : (u32 , String)`.
pub(crate) fn display(tokens: impl ToTokens) -> String {
    let text = tokens.to_token_stream().to_string();
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = out.chars().last();
            let next = chars.get(i + 1).copied();
            let hugs_next = matches!(next, Some(',' | ';' | ')' | ']' | '>' | '.' | ':'))
                || (next == Some('<') && prev.is_some_and(|p| p.is_alphanumeric() || p == '_'));
            let hugs_prev =
                matches!(prev, Some('<' | '(' | '[' | '&' | '!')) || out.ends_with("::");
            if hugs_next || hugs_prev {
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::display;

    #[test]
    fn display_reads_like_source() {
        let ty: syn::Type = syn::parse_quote!(anyhow::Result<Vec<(u32, &'static str)>>);
        assert_eq!(display(&ty), "anyhow::Result<Vec<(u32, &'static str)>>");
        let param: syn::FnArg = syn::parse_quote!((a, b): (u32, u32));
        assert_eq!(display(&param), "(a, b): (u32, u32)");
    }
}
