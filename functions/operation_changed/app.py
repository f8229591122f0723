"""Operation changed: an `AppRunner Service Operation Status Change` event.

The event names only the service, so the outcome is confirmed with ListOperations before the deployment
is settled; settling frees the service and starts its pending deployment.
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
    return runtime.process_operation(event, metrics)
