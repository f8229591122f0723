"""Reconciler, on a schedule: settles what ended (App Runner events are best effort), adopts operations
whose start was not recorded, flags stuck ones and starts pending deployments. With nothing in flight it
costs one DynamoDB query.
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
    return runtime.process_schedule(metrics)
