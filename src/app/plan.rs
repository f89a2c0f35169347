//! `plan`: what `up` would change, and what the environment would cost.

use serde::Serialize;

use super::{AppError, Environment};
use crate::cost::{self, Estimate, Prices, Workload};
use crate::deploy::changeset::{Change, Kind};

/// What `up` would do.
#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub stack: String,
    pub kind: Kind,
    pub changes: Vec<Change>,
    pub cost: Estimate,
}

pub async fn plan(env: &Environment, workload: Workload) -> Result<PlanReport, AppError> {
    let d = env.deployment();
    let (kind, changes) =
        crate::deploy::plan::plan(&env.aws.cloudformation(), &d.stack, &d.body, &d.tags).await?;
    Ok(PlanReport {
        stack: d.stack,
        kind,
        changes,
        cost: cost::estimate(&env.resolved, workload, &Prices::us_east_1()),
    })
}
