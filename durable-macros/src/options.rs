//! The options inside `#[activity(..)]` and `#[orchestrator(..)]`: one parser for both macros.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitInt, LitStr, Path, Token};

use crate::diag::Errors;
use crate::kind::Kind;
use crate::lint;

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(retry);
    syn::custom_keyword!(version);
    syn::custom_keyword!(allow);
    syn::custom_keyword!(blocking);
}

/// The options of one attribute, each already checked; an option with an error is left unset
/// so that the rest of the expansion can go on with its default.
#[derive(Default)]
pub(crate) struct Options {
    /// `name = "…"`: the durable name, instead of the function's name.
    pub(crate) name: Option<LitStr>,
    /// `crate = "…"`: the path of the runtime crate when it is renamed.
    pub(crate) krate: Option<Path>,
    /// `retry = <expr>` (activities): the default `RetryPolicy`.
    pub(crate) retry: Option<Expr>,
    /// `version = N` (orchestrators).
    pub(crate) version: Option<LitInt>,
    /// `allow(rule, …)` (orchestrators): determinism rules switched off.
    pub(crate) allow: Vec<Ident>,
    /// `blocking` (activities): the body is a plain `fn` run on the blocking thread pool.
    pub(crate) blocking: bool,
}

/// The keys of `kind`, for the message on a typo.
fn valid_keys(kind: Kind) -> &'static str {
    match kind {
        Kind::Activity => "`name = \"..\"`, `crate = \"..\"`, `retry = <RetryPolicy>`, `blocking`",
        Kind::Orchestrator => {
            "`name = \"..\"`, `crate = \"..\"`, `version = <integer>`, `allow(<rule>, ..)`"
        }
    }
}

/// Parses the attribute's arguments, recording every problem in `errors`.
pub(crate) fn parse(kind: Kind, args: TokenStream, errors: &mut Errors) -> Options {
    let mut options = Options::default();
    let parser = |input: ParseStream| parse_options(kind, input, &mut options, errors);
    if let Err(error) = parser.parse2(args) {
        errors.push(error);
    }
    options
}

/// One option that may be given once; the first span is kept to report a duplicate.
struct Once<T> {
    key: &'static str,
    seen: Option<Span>,
    value: Option<T>,
}

impl<T> Once<T> {
    fn new(key: &'static str) -> Self {
        Once {
            key,
            seen: None,
            value: None,
        }
    }

    /// Records the option given at `key_span`; a second occurrence is an error.
    fn set(&mut self, key_span: Span, value: Option<T>, errors: &mut Errors) {
        if self.seen.is_some() {
            errors.at(
                key_span,
                format_args!(
                    "duplicate option `{}`: it is already given earlier in this attribute; keep one",
                    self.key
                ),
            );
            return;
        }
        self.seen = Some(key_span);
        self.value = value;
    }
}

fn parse_options(
    kind: Kind,
    input: ParseStream,
    options: &mut Options,
    errors: &mut Errors,
) -> syn::Result<()> {
    let mut name = Once::new("name");
    let mut krate = Once::new("crate");
    let mut retry = Once::new("retry");
    let mut version = Once::new("version");
    let mut allow = Once::new("allow");
    let mut blocking = Once::new("blocking");

    while !input.is_empty() {
        let lookahead = input.lookahead1();
        if lookahead.peek(kw::name) {
            let key = input.parse::<kw::name>()?;
            input.parse::<Token![=]>()?;
            let value: LitStr = input.parse()?;
            let value = check_name(value, errors);
            name.set(key.span, value, errors);
        } else if lookahead.peek(Token![crate]) {
            let key = input.parse::<Token![crate]>()?;
            input.parse::<Token![=]>()?;
            let value: LitStr = input.parse()?;
            let value = match value.parse::<Path>() {
                Ok(path) => Some(path),
                Err(_) => {
                    errors.spanned(
                        &value,
                        "`crate` must name the runtime crate as a path, \
                         for example `crate = \"::durable\"` when the dependency is renamed to `durable`",
                    );
                    None
                }
            };
            krate.set(key.span, value, errors);
        } else if lookahead.peek(kw::retry) {
            let key = input.parse::<kw::retry>()?;
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            let value = if kind == Kind::Orchestrator {
                errors.at(
                    key.span,
                    "`retry` is an option of `#[activity]`: \
                     an orchestration is not retried as a whole; \
                     set the policy on its calls with `ctx.call(..).retry(policy)` or on the activity with `#[activity(retry = ..)]`",
                );
                None
            } else {
                Some(value)
            };
            retry.set(key.span, value, errors);
        } else if lookahead.peek(kw::version) {
            let key = input.parse::<kw::version>()?;
            input.parse::<Token![=]>()?;
            let value: LitInt = input.parse()?;
            let value = if kind == Kind::Activity {
                errors.at(
                    key.span,
                    "`version` is an option of `#[orchestrator]`: activities are not replayed, \
                     so they have no version; give a changed activity a new `name = \"..\"` instead",
                );
                None
            } else {
                check_version(value, errors)
            };
            version.set(key.span, value, errors);
        } else if lookahead.peek(kw::allow) {
            let key = input.parse::<kw::allow>()?;
            let content;
            syn::parenthesized!(content in input);
            let rules = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
            let value = if kind == Kind::Activity {
                errors.at(
                    key.span,
                    "`allow(..)` is an option of `#[orchestrator]`: activities are not replayed, \
                     so the determinism lint does not check them; remove it",
                );
                None
            } else {
                Some(check_rules(rules, errors))
            };
            allow.set(key.span, value, errors);
        } else if lookahead.peek(kw::blocking) {
            let key = input.parse::<kw::blocking>()?;
            let value = if input.peek(Token![=]) {
                errors.at(
                    key.span,
                    "`blocking` takes no value: write `#[activity(blocking)]`",
                );
                input.parse::<Token![=]>()?;
                // `blocking = true` still says what was meant; anything else leaves it unset.
                let meant = input.peek(syn::LitBool) && input.parse::<syn::LitBool>()?.value;
                skip_value(input)?;
                meant.then_some(())
            } else if kind == Kind::Orchestrator {
                errors.at(
                    key.span,
                    "`blocking` is an option of `#[activity]`: an orchestrator must never block, \
                     because it only decides what to do next and is polled on the runtime's workers; \
                     move the blocking work into an `#[activity(blocking)]` and call it with `ctx.call(..)`",
                );
                None
            } else {
                Some(())
            };
            blocking.set(key.span, value, errors);
        } else if input.peek(Ident) || input.peek(Token![crate]) {
            let key: Ident = syn::ext::IdentExt::parse_any(input)?;
            errors.spanned(
                &key,
                format_args!(
                    "unknown option `{key}` for `{}`: the valid options are {}",
                    kind.attribute(),
                    valid_keys(kind)
                ),
            );
            skip_value(input)?;
        } else {
            return Err(lookahead.error());
        }

        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }

    options.name = name.value;
    options.krate = krate.value;
    options.retry = retry.value;
    options.version = version.value;
    options.allow = allow.value.unwrap_or_default();
    options.blocking = blocking.value.is_some();
    Ok(())
}

/// Skips an unknown option's value, up to the next top-level comma, so the options after it
/// are still checked.
fn skip_value(input: ParseStream) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

fn check_name(value: LitStr, errors: &mut Errors) -> Option<LitStr> {
    let text = value.value();
    if text.trim().is_empty() || text.trim() != text {
        errors.spanned(
            &value,
            "the durable name must not be empty or start or end with spaces: \
             it is how histories refer to this function",
        );
        return None;
    }
    Some(value)
}

fn check_version(value: LitInt, errors: &mut Errors) -> Option<LitInt> {
    match value.base10_parse::<u32>() {
        Ok(0) | Err(_) => {
            errors.spanned(
                &value,
                "`version` must be an integer from 1 (the default) to u32::MAX; \
                 bump it when the orchestrator's code changes in a way old histories cannot replay",
            );
            None
        }
        // Re-emitted unsuffixed, as a `u32`, whatever suffix the user wrote.
        Ok(n) => Some(LitInt::new(&n.to_string(), value.span())),
    }
}

fn check_rules(rules: Punctuated<Ident, Token![,]>, errors: &mut Errors) -> Vec<Ident> {
    let mut valid = Vec::new();
    for rule in rules {
        if lint::rule(&rule.to_string()).is_none() {
            errors.spanned(
                &rule,
                format_args!(
                    "unknown determinism rule `{rule}`: the rules are {}",
                    lint::rule_ids()
                ),
            );
        } else if valid.contains(&rule) {
            errors.spanned(
                &rule,
                format_args!(
                    "rule `{rule}` is already allowed in this list; remove the repetition"
                ),
            );
        } else {
            valid.push(rule);
        }
    }
    valid
}

impl Options {
    /// The path of the runtime crate in generated code.
    pub(crate) fn runtime(&self) -> TokenStream {
        match &self.krate {
            Some(path) => path.to_token_stream(),
            None => quote::quote!(::durable_runtime),
        }
    }
}
