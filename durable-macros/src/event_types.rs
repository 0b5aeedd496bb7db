//! Event waits whose data type nothing names, such as `ctx.wait_for_event("x").await?;` in an
//! orchestrator's body.
//!
//! Edition 2024 rejects them through the runtime's `EventData` bound, but edition 2021 infers
//! `()` and only a compiler lint objects, suggesting `::<()>`, which fails at run time on any
//! event that carries data. So the macro reports the shapes it can see, with the fix, in both.

use syn::visit_mut::{self, VisitMut};
use syn::{Expr, ExprMethodCall, Ident, ItemFn, Pat, Stmt};

use crate::diag::Errors;

/// Reports every wait on the context whose result is discarded and whose type is not named,
/// then names it `()` in the emitted code, so that the compiler adds no second error there.
pub(crate) fn check(function: &mut ItemFn, errors: &mut Errors) {
    let Some(ctx) = context_name(function) else {
        return;
    };
    let mut finder = Finder { ctx, errors };
    finder.visit_block_mut(&mut function.block);
}

/// The context parameter's name, when it is bound to one.
fn context_name(function: &ItemFn) -> Option<Ident> {
    match function.sig.inputs.first()? {
        syn::FnArg::Typed(param) => match &*param.pat {
            Pat::Ident(pat) => Some(pat.ident.clone()),
            _ => None,
        },
        syn::FnArg::Receiver(_) => None,
    }
}

struct Finder<'e> {
    ctx: Ident,
    errors: &'e mut Errors,
}

impl Finder<'_> {
    /// `ctx.wait_for_event(..)[.timeout(..)].await[?]`, the value of which is dropped.
    fn check_discarded(&mut self, expr: &mut Expr) {
        let expr = match expr {
            Expr::Try(try_expr) => &mut *try_expr.expr,
            other => other,
        };
        let Expr::Await(awaited) = expr else {
            return;
        };
        let call = match &mut *awaited.base {
            Expr::MethodCall(timeout) if timeout.method == "timeout" => &mut *timeout.receiver,
            other => other,
        };
        let Expr::MethodCall(wait) = call else {
            return;
        };
        if wait.method == "wait_for_event" && wait.turbofish.is_none() && self.on_context(wait) {
            self.errors.spanned(
                &wait.method,
                format_args!(
                    "the type of the event's data is missing: nothing uses the result of this wait, so nothing \
                     names the type; write `{ctx}.wait_for_event::<T>(..)` with the type of the data, \
                     `::<()>` for an event raised without data, or `::<serde::de::IgnoredAny>` to ignore the data",
                    ctx = self.ctx
                ),
            );
            wait.turbofish = Some(syn::parse_quote!(::<()>));
        }
    }

    fn on_context(&self, call: &ExprMethodCall) -> bool {
        matches!(&*call.receiver, Expr::Path(path) if path.qself.is_none() && path.path.is_ident(&self.ctx))
    }
}

impl VisitMut for Finder<'_> {
    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        match stmt {
            Stmt::Expr(expr, Some(_)) => self.check_discarded(expr),
            Stmt::Local(local) if matches!(local.pat, Pat::Wild(_)) => {
                if let Some(init) = &mut local.init {
                    self.check_discarded(&mut init.expr);
                }
            }
            _ => {}
        }
        visit_mut::visit_stmt_mut(self, stmt);
    }
}

#[cfg(test)]
mod tests {
    use quote::ToTokens;
    use syn::parse_quote;

    use super::*;

    /// The number of reports, and the body as emitted.
    fn run(function: ItemFn) -> (usize, String) {
        let mut function = function;
        let mut errors = Errors::default();
        check(&mut function, &mut errors);
        (errors.count(), function.block.to_token_stream().to_string())
    }

    #[test]
    fn discarded_untyped_waits_are_reported_and_named_unit() {
        let (count, body) = run(parse_quote! {
            async fn f(ctx: OrchestrationContext) -> Result<(), TaskError> {
                ctx.wait_for_event("a").await?;
                let _ = ctx.wait_for_event("b").timeout(d).await;
                if x {
                    ctx.wait_for_event("c").await?;
                }
                Ok(())
            }
        });
        assert_eq!(count, 3);
        assert_eq!(
            body.matches("wait_for_event :: < () >").count(),
            3,
            "{body}"
        );
    }

    #[test]
    fn waits_whose_type_is_named_or_used_are_left_alone() {
        let (count, _) = run(parse_quote! {
            async fn f(ctx: OrchestrationContext) -> Result<(), TaskError> {
                ctx.wait_for_event::<String>("a").await?;
                let b: u32 = ctx.wait_for_event("b").await?;
                let _: () = ctx.wait_for_event("c").await?;
                let c = ctx.wait_for_event("c").await?;
                use_it(c);
                other.wait_for_event("d").await?;
                Ok(())
            }
        });
        assert_eq!(count, 0);
    }
}
