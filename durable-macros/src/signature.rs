//! Checking the annotated function's signature: `async fn name(ctx: Context, input: I) -> Result<O, E>`.

use proc_macro2::Span;
use syn::{FnArg, GenericParam, ItemFn, PatType, ReturnType, Type};

use crate::diag::{display, Errors};
use crate::kind::Kind;
use crate::options::Options;

/// A signature that passed every check, keeping the user's nodes so later steps can span
/// their output on them.
pub(crate) struct Signature<'a> {
    pub(crate) item: &'a ItemFn,
    /// The input parameter; `None` means the input is `()`.
    pub(crate) input: Option<&'a PatType>,
    /// The declared return type (a `…Result<..>` path).
    pub(crate) output: &'a Type,
}

impl Signature<'_> {
    /// Whole-function errors (a future that is not `Send`) point at the function's name.
    pub(crate) fn name_span(&self) -> Span {
        self.item.sig.ident.span()
    }
}

/// Parses the annotated item as a function, or explains where the attribute goes.
pub(crate) fn parse_item(kind: Kind, item: proc_macro2::TokenStream) -> syn::Result<ItemFn> {
    match syn::parse2::<syn::Item>(item)? {
        syn::Item::Fn(item) => Ok(item),
        other => Err(syn::Error::new_spanned(
            other,
            format_args!(
                "`{}` goes on an `async fn(ctx: {}, input: Input) -> Result<Output, Error>`; \
                 it turns that function into a unit struct of the same name",
                kind.attribute(),
                kind.context()
            ),
        )),
    }
}

/// Checks everything at once; `None` if anything is wrong (the errors are in `errors`).
pub(crate) fn validate<'a>(
    kind: Kind,
    options: &Options,
    item: &'a ItemFn,
    errors: &mut Errors,
) -> Option<Signature<'a>> {
    let before = errors.count();
    check_qualifiers(kind, options, &item.sig, errors);
    check_generics(kind, &item.sig, errors);
    let input = check_params(kind, &item.sig, errors);
    let output = check_return(kind, &item.sig, errors);
    if errors.count() > before {
        return None;
    }
    Some(Signature {
        item,
        input,
        output: output?,
    })
}

/// `async` (no `async` for a blocking activity), and none of `const`, `unsafe`, `extern`.
fn check_qualifiers(kind: Kind, options: &Options, sig: &syn::Signature, errors: &mut Errors) {
    let attr = kind.attribute();
    if let Some(constness) = &sig.constness {
        errors.spanned(
            constness,
            format_args!("`{attr}` functions cannot be `const fn`: they run on the runtime's workers; remove `const`"),
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.spanned(
            unsafety,
            format_args!(
                "`{attr}` functions cannot be `unsafe fn`: the runtime calls them like any safe function; \
                 remove `unsafe` and put the unsafe code in an `unsafe {{ .. }}` block in the body"
            ),
        );
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(
            abi,
            format_args!(
                "`{attr}` functions cannot have an `extern` ABI: the runtime calls them as Rust `async fn`s; remove `{}`",
                display(abi)
            ),
        );
    }
    match (&sig.asyncness, options.blocking) {
        (Some(asyncness), true) => errors.spanned(
            asyncness,
            "`#[activity(blocking)]` functions are plain `fn`s, run on the blocking thread pool where \
             nothing would poll an `async fn`; remove `async`, or remove `blocking` to run this \
             `async fn` on the runtime's workers",
        ),
        (None, false) => {
            let blocking = match kind {
                Kind::Activity => {
                    ", or keep the plain `fn` and write `#[activity(blocking)]` to run it on the blocking thread pool"
                }
                Kind::Orchestrator => "",
            };
            errors.spanned(
                sig.fn_token,
                format_args!(
                    "the `async` keyword is missing from the function declaration: `{attr}` functions are `async fn`s; \
                     write `async fn {}(..)`{blocking}",
                    sig.ident
                ),
            );
        }
        _ => {}
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(
            variadic,
            format_args!(
                "`{attr}` functions cannot be variadic: they take `ctx: {}` and at most one input",
                kind.context()
            ),
        );
    }
}

/// No type, lifetime or const parameters, no `where` clause.
fn check_generics(kind: Kind, sig: &syn::Signature, errors: &mut Errors) {
    let attr = kind.attribute();
    for param in &sig.generics.params {
        let message = match param {
            GenericParam::Type(_) => format!(
                "`{attr}` functions cannot be generic: the runtime finds the function by its durable name, \
                 so the name must stand for one concrete function; replace the type parameter with a concrete type"
            ),
            GenericParam::Lifetime(_) => format!(
                "`{attr}` functions cannot have lifetime parameters: the input is decoded from the history \
                 and the future outlives the call, so everything must be owned; \
                 use owned types (`String` rather than `&'a str`)"
            ),
            GenericParam::Const(_) => format!(
                "`{attr}` functions cannot have const parameters: the runtime finds the function by its durable name, \
                 so the name must stand for one concrete function; use a constant or a field of the input"
            ),
        };
        errors.spanned(param, message);
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.spanned(
            where_clause,
            format_args!("`{attr}` functions cannot have a `where` clause: they cannot be generic; remove it"),
        );
    }
}

/// What a parameter's type says about it being a context.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Param {
    Context(Kind),
    ContextRef(Kind),
    Other,
}

fn classify(ty: &Type) -> Param {
    match ty {
        Type::Reference(reference) => match classify(&reference.elem) {
            Param::Context(kind) => Param::ContextRef(kind),
            other => other,
        },
        Type::Paren(inner) => classify(&inner.elem),
        Type::Group(inner) => classify(&inner.elem),
        // Matched by the last segment, so `durable_runtime::ActivityContext` and an imported
        // `ActivityContext` are both recognised.
        Type::Path(path) if path.qself.is_none() => match path.path.segments.last() {
            Some(last) if last.ident == "ActivityContext" => Param::Context(Kind::Activity),
            Some(last) if last.ident == "OrchestrationContext" => {
                Param::Context(Kind::Orchestrator)
            }
            _ => Param::Other,
        },
        _ => Param::Other,
    }
}

/// The context first, then at most one owned input. Returns the input.
fn check_params<'a>(
    kind: Kind,
    sig: &'a syn::Signature,
    errors: &mut Errors,
) -> Option<&'a PatType> {
    let attr = kind.attribute();
    let context = kind.context();
    let mut params = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(receiver) => errors.spanned(
                receiver,
                format_args!(
                    "`{attr}` functions are free functions, not methods: remove `self` \
                     (the macro turns the function into a unit struct with the same name)"
                ),
            ),
            FnArg::Typed(param) => params.push((param, classify(&param.ty))),
        }
    }
    let has_receiver = params.len() < sig.inputs.len();

    let mut inputs: Vec<&PatType> = Vec::new();
    match params.split_first() {
        None if has_receiver => {}
        None => errors.at(
            sig.paren_token.span.join(),
            format_args!(
                "the context parameter is missing: `{attr}` functions take `ctx: {context}` first; \
                 write `{name}(ctx: {context})`, or `{name}(ctx: {context}, input: Input)` with an input",
                name = sig.ident
            ),
        ),
        Some(((first, class), rest)) => {
            match *class {
                Param::Context(found) | Param::ContextRef(found) if found != kind => errors.spanned(
                    &first.ty,
                    format_args!(
                        "wrong context type: `{attr}` functions take `{context}`, not `{}`; \
                         change the type, or use `{}` if this function is meant to be one",
                        found.context(),
                        found.attribute()
                    ),
                ),
                Param::Context(_) => {}
                Param::ContextRef(_) => errors.spanned(
                    &first.ty,
                    format_args!(
                        "take the context by value: write `{}: {context}` (it is a cheap handle; clone it to keep another)",
                        display(&first.pat)
                    ),
                ),
                Param::Other => match rest.iter().find(|(_, class)| *class != Param::Other) {
                    Some((context_param, _)) => errors.spanned(
                        context_param,
                        format_args!(
                            "the context must be the first parameter: move `{}` before `{}`",
                            display(context_param),
                            display(first)
                        ),
                    ),
                    None => {
                        errors.spanned(
                            first,
                            format_args!(
                                "the context parameter is missing: `{attr}` functions take `ctx: {context}` first, \
                                 then at most one input; add `ctx: {context}` before `{}`",
                                display(first)
                            ),
                        );
                        inputs.push(first);
                    }
                },
            }
            // A misplaced context was reported above; everything else is an input.
            inputs.extend(rest.iter().filter(|(_, class)| *class == Param::Other).map(|(param, _)| *param));
        }
    }

    if inputs.len() > 1 {
        let patterns: Vec<String> = inputs.iter().map(|param| display(&param.pat)).collect();
        let types: Vec<String> = inputs.iter().map(|param| display(&param.ty)).collect();
        // Pointing at the extra inputs: the first one is where an input belongs.
        let extra = &inputs[1..];
        errors.spanned(
            quote::quote!(#(#extra),*),
            format_args!(
                "`{attr}` functions take at most one input after the context, because the input is stored \
                 in the history as one value; combine them into a struct, or a tuple: `({}): ({})`",
                patterns.join(", "),
                types.join(", ")
            ),
        );
    }
    for input in &inputs {
        match &*input.ty {
            Type::Reference(reference) => errors.spanned(
                reference,
                format_args!(
                    "`{attr}` inputs must be owned: the input is decoded from the history and the future \
                     outlives the call; take an owned type (`String` rather than `&str`, `Vec<T>` rather than `&[T]`)"
                ),
            ),
            Type::ImplTrait(impl_trait) => errors.spanned(
                impl_trait,
                format_args!(
                    "`{attr}` inputs cannot be `impl Trait`: that makes the function generic, and the input \
                     must be one concrete type decoded from the history; use a concrete type"
                ),
            ),
            _ => {}
        }
    }
    inputs.first().copied()
}

/// A path type whose last segment ends in `Result`: `Result<T, E>`, `anyhow::Result<T>`, ….
fn check_return<'a>(kind: Kind, sig: &'a syn::Signature, errors: &mut Errors) -> Option<&'a Type> {
    let attr = kind.attribute();
    match &sig.output {
        ReturnType::Default => {
            errors.at(
                sig.paren_token.span.close(),
                format_args!(
                    "`{attr}` functions must return `Result<Output, Error>`: add a return type such as \
                     `-> Result<(), anyhow::Error>`; a failure is recorded in the history"
                ),
            );
            None
        }
        ReturnType::Type(_, ty) => {
            let is_result = matches!(
                &**ty,
                Type::Path(path) if path.qself.is_none()
                    && path.path.segments.last().is_some_and(|last| last.ident.to_string().ends_with("Result"))
            );
            if !is_result {
                errors.spanned(
                    ty,
                    format_args!(
                        "`{attr}` functions must return `Result<Output, Error>` (or an alias such as `anyhow::Result<T>`), \
                         not `{ty}`: a failure is recorded in the history; \
                         return `Result<{ty}, anyhow::Error>` and wrap the value in `Ok(..)`",
                        ty = display(ty)
                    ),
                );
            }
            Some(&**ty)
        }
    }
}
