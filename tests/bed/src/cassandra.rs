//! What Cassandra says of the bed: the rows a run's table holds, read at QUORUM as a client
//! after the run would read them, and whether every node answers.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::time::Duration;

use anyhow::{Context, Result};
use scylla::client::session::Session;
use scylla::response::PagingState;
use scylla::statement::unprepared::Statement;
use scylla::statement::Consistency;

/// (rows, distinct ids) of `keyspace`'s table, read at QUORUM page by page: equal, and equal
/// to what was published, when every record is exactly one row.
pub async fn rows_at_quorum(session: &Session, keyspace: &str) -> Result<(u64, u64)> {
    let mut statement = Statement::new(format!("SELECT id FROM {keyspace}.created_users"));
    statement.set_consistency(Consistency::Quorum);
    statement.set_page_size(5000);
    let mut ids = HashSet::new();
    let mut rows = 0;
    let mut paging = PagingState::start();
    loop {
        let (result, next) = session
            .query_single_page(statement.clone(), (), paging)
            .await
            .context("SELECT at QUORUM")?;
        for row in result
            .into_rows_result()
            .context("rows")?
            .rows::<(uuid::Uuid,)>()
            .context("rows")?
        {
            ids.insert(row.context("row")?.0);
            rows += 1;
        }
        match next.into_paging_control_flow() {
            ControlFlow::Break(()) => break,
            ControlFlow::Continue(state) => paging = state,
        }
    }
    Ok((rows, ids.len() as u64))
}

/// Ok when a read at ALL of `keyspace`'s table succeeds: on the bed every node is a replica
/// of it, so each must answer. `timeout`: how long one read may take (None: the session's
/// own request timeout).
pub async fn answers_at_all(
    session: &Session,
    keyspace: &str,
    timeout: Option<Duration>,
) -> Result<()> {
    let mut statement = Statement::new(format!("SELECT id FROM {keyspace}.created_users LIMIT 1"));
    statement.set_consistency(Consistency::All);
    if timeout.is_some() {
        statement.set_request_timeout(timeout);
    }
    session
        .query_unpaged(statement, ())
        .await
        .context("read at ALL")?;
    Ok(())
}
