//! `list`: filtering and paging the instances held in memory.

use super::state::State;
use crate::store::paging::{self, Candidate};
use crate::store::{InstancePage, InstanceQuery, StoreError};

pub(crate) fn list(state: &State, query: &InstanceQuery) -> Result<InstancePage, StoreError> {
    let candidates = state.instances.iter().map(|(id, i)| Candidate {
        created_at: i.created_at,
        id,
        status: i.runtime_status,
        name: &i.name,
        record: i,
    });
    let (records, continuation) = paging::page(query, candidates)?;
    let instances = records
        .into_iter()
        .map(State::decode_status)
        .collect::<Result<_, _>>()?;
    Ok(InstancePage {
        instances,
        continuation,
    })
}
