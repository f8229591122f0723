"""Image pushed: an `ECR Image Action` (PUSH, SUCCESS) or `ECR Replication Action` (SUCCESS) event.

Decides for every rule that watches the repository, starts what must deploy, records it all. An image's
scan (`ECR Image Scan`, `Inspector2 Scan`) comes here too: it opens the scan gate of the deployments held
for it. Powertools idempotency on the EventBridge event id makes a redelivered event a no-op.
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
    return runtime.once_per_event(runtime.process_push, event, context, metrics)
