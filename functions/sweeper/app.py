"""Sweeper, on a schedule: ECR and CodeCommit deliver their events best effort, so it asks every source a
rule watches what it holds (DescribeImages, GetBranch) and deploys, as `trigger: sweep`, each push the
ledger has no change for. With nothing new it calls no App Runner API.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from pushdeploy import runtime

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return runtime.process_sweep(context, metrics)
