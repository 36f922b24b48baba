//! The traffic rules engine: compiled vServices, rule conditions and CORS
//! policy selection (R16, R17).
//!
//! The types and the one route compiler live in the `corsgate-routes`
//! crate, so that `corsgate check`, the admin store and the data plane
//! share them; they are re-exported here for users of this crate.

pub use corsgate_routes::{
    compile, prefix_matches, Action, Binding, CompiledRule, CompiledVService, HeaderChanges,
    PathChange, RedirectTarget, RequestFacts, RouteErrorId, Selection,
};
