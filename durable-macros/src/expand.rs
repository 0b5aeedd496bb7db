//! Code generation: the unit struct, its `run` function and the runtime trait impl.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Ident, LitStr};

use crate::kind::Kind;
use crate::options::Options;
use crate::signature::Signature;

/// The expansion of a valid function.
pub(crate) fn expand(kind: Kind, sig: &Signature, options: &Options) -> TokenStream {
    let item = sig.item;
    let vis = &item.vis;
    let ident = &item.sig.ident;
    let runtime = options.runtime();
    let private = quote!(#runtime::__private);
    let trait_name = Ident::new(kind.trait_name(), Span::call_site());
    let context = Ident::new(kind.context(), Span::call_site());

    // Doc comments describe the durable function, so they document the struct; `cfg`s apply
    // to every generated item; the rest (`#[allow]`, `#[tracing::instrument]`, …) concern
    // the body and stay on `run`.
    let docs: Vec<&Attribute> = item
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .collect();
    let cfgs: Vec<&Attribute> = item
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg") || a.path().is_ident("cfg_attr"))
        .collect();
    let others: Vec<&Attribute> = item
        .attrs
        .iter()
        .filter(|a| {
            !(a.path().is_ident("doc") || a.path().is_ident("cfg") || a.path().is_ident("cfg_attr"))
        })
        .collect();

    let mut run = item.sig.clone();
    run.ident = Ident::new("run", ident.span());
    let block = &item.block;
    let run_doc = match kind {
        Kind::Activity => format!(
            " The body of `{ident}`, run directly without the runtime (for unit tests, with \
             `ActivityContext::for_test`)."
        ),
        // An `OrchestrationContext` exists only inside a turn: say how to test instead.
        Kind::Orchestrator => format!(
            " The body of `{ident}`. Its context exists only inside a turn: unit-test it with \
             `durable_runtime::testing::OrchestrationTest`."
        ),
    };

    let name = options
        .name
        .clone()
        .unwrap_or_else(|| LitStr::new(&unraw(ident), ident.span()));
    let version = options
        .version
        .as_ref()
        .map(|version| quote!(const VERSION: u32 = #version;));
    let retry = options.retry.as_ref().map(|retry| {
        let body = quote_spanned!(retry.span()=> ::core::option::Option::Some(#retry));
        quote! {
            fn default_retry() -> ::core::option::Option<#private::RetryPolicy> {
                #body
            }
        }
    });

    // Spanned on the user's types so that an unsatisfied bound (`Payload`, `FailureSource`,
    // `Returns`) is reported on them rather than on the attribute.
    let input_type = match sig.input {
        Some(input) => {
            let ty = &input.ty;
            quote_spanned!(ty.span()=> type Input = #ty;)
        }
        None => quote!(
            type Input = ();
        ),
    };
    let output = sig.output;
    let output_types = quote_spanned! {sig.output.span()=>
        type Output = <#output as #private::Returns>::Ok;
        type Error = <#output as #private::Returns>::Err;
    };

    let ctx = Ident::new("ctx", Span::mixed_site());
    let input = Ident::new("input", Span::mixed_site());
    let (input_param, run_args) = match sig.input {
        Some(_) => (quote!(#input), quote!(#ctx, #input)),
        // `()` as a pattern: there is no input to pass on.
        None => (quote!(()), quote!(#ctx)),
    };
    let invoke = if options.blocking {
        quote!(#private::run_blocking(move || Self::run(#run_args)))
    } else {
        // The future is coerced to `BoxFuture`, which is `Send`, at a local located on the
        // function's name: a future that is not `Send` is reported there, and nowhere else.
        let future = Ident::new("__durable_future", sig.name_span());
        quote! {
            let #future = #private::box_pin(Self::run(#run_args));
            #future
        }
    };

    quote! {
        #(#docs)*
        #(#cfgs)*
        #[allow(non_camel_case_types)]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug, ::core::default::Default)]
        #vis struct #ident;

        #(#cfgs)*
        impl #ident {
            #[doc = #run_doc]
            #(#others)*
            #vis #run #block
        }

        #(#cfgs)*
        #[automatically_derived]
        impl #private::#trait_name for #ident {
            const NAME: &'static str = #name;
            #version
            #input_type
            #output_types
            #retry
            fn __invoke(
                #ctx: #private::#context,
                #input_param: Self::Input,
                _: #private::Seal,
            ) -> #private::BoxFuture<'static, ::core::result::Result<Self::Output, Self::Error>> {
                #invoke
            }
        }
    }
}

/// The function's name as text, without a raw-identifier `r#`.
fn unraw(ident: &Ident) -> String {
    let text = ident.to_string();
    text.strip_prefix("r#").map(str::to_owned).unwrap_or(text)
}
