"""pushdeploy: deploy-on-push controller for AWS App Runner."""

__version__ = "0.1.0"
