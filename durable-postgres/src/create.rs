//! Creating an instance, alone or with the turn of its parent: its row and start message in
//! one statement, after dropping a finished instance it replaces.

use deadpool_postgres::GenericClient;
use durable_runtime::store::{NewInstance, StoreError};
use durable_runtime::InstanceId;
use tokio_postgres::Statement;

use crate::codec::{encode, encode_text, nanos, status_name, IMMEDIATE};
use crate::pipeline::{prepare, step, Step};
use crate::sql::Sql;

/// An instance's row and start message, encoded for `insert_instance`.
pub(crate) struct NewRow {
    pub(crate) id: InstanceId,
    id_text: String,
    name: String,
    version: i64,
    status: &'static str,
    created_at: i64,
    updated_at: i64,
    input: Vec<u8>,
    output: Option<Vec<u8>>,
    custom_status: Option<String>,
    failure: Option<Vec<u8>>,
    parent: Option<String>,
    start_at: i64,
    start: Vec<u8>,
    replace_finished: bool,
}

impl NewRow {
    pub(crate) fn new(new: &NewInstance) -> NewRow {
        let status = &new.status;
        NewRow {
            id: status.instance_id.clone(),
            id_text: status.instance_id.to_string(),
            name: status.name.clone(),
            version: i64::from(status.version),
            status: status_name(status.runtime_status),
            created_at: nanos(status.created_at),
            updated_at: nanos(status.last_updated_at),
            input: encode(&status.input),
            output: status.output.as_ref().map(encode),
            custom_status: status.custom_status.as_ref().map(encode_text),
            failure: status.failure.as_ref().map(encode),
            parent: status.parent.as_ref().map(|p| p.to_string()),
            start_at: new.start_at.map_or(IMMEDIATE, nanos),
            start: encode(&new.start),
            replace_finished: new.replace_finished,
        }
    }

    /// The bytes of payload it writes.
    pub(crate) fn bytes(&self) -> usize {
        let some = |value: &Option<Vec<u8>>| value.as_ref().map_or(0, Vec::len);
        self.input.len()
            + self.start.len()
            + some(&self.output)
            + some(&self.failure)
            + self.custom_status.as_ref().map_or(0, String::len)
    }

    /// The steps creating it; the last returns a row if it was created.
    pub(crate) fn steps<'a>(
        &'a self,
        tx: &'a tokio_postgres::Client,
        statements: &'a CreateStatements,
    ) -> Vec<Step<'a>> {
        let mut steps: Vec<Step<'a>> = Vec::new();
        if self.replace_finished {
            steps.push(step(tx, &statements.delete_finished, &[&self.id_text]));
        }
        steps.push(step(
            tx,
            &statements.insert_instance,
            &[
                &self.id_text,
                &self.name,
                &self.version,
                &self.status,
                &self.created_at,
                &self.updated_at,
                &self.input,
                &self.output,
                &self.custom_status,
                &self.failure,
                &self.parent,
                &self.start_at,
                &self.start,
            ],
        ));
        steps
    }
}

pub(crate) struct CreateStatements {
    delete_finished: Statement,
    insert_instance: Statement,
}

impl CreateStatements {
    pub(crate) async fn prepare(
        client: &impl GenericClient,
        sql: &Sql,
    ) -> Result<Self, StoreError> {
        let (delete_finished, insert_instance) = futures::try_join!(
            prepare(client, &sql.delete_finished),
            prepare(client, &sql.insert_instance),
        )?;
        Ok(CreateStatements {
            delete_finished,
            insert_instance,
        })
    }
}
