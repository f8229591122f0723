"""App Runner services as a user creates them (CreateService's SourceConfiguration), for the demo, the
benchmarks and the tests: an ECR image service and a code service, in manual deployment mode unless
`automatic`."""

from __future__ import annotations

from typing import Any


def image_source(image: str, access_role: str, automatic: bool = False) -> dict[str, Any]:
    """An image service of a private ECR image (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG`)."""
    return {
        "ImageRepository": {
            "ImageIdentifier": image,
            "ImageRepositoryType": "ECR",
            "ImageConfiguration": {"Port": "8080"},
        },
        "AuthenticationConfiguration": {"AccessRoleArn": access_role},
        "AutoDeploymentsEnabled": automatic,
    }


def code_source(repository_url: str, branch: str, connection: str, automatic: bool = False) -> dict[str, Any]:
    """A code service that builds a branch, configured by the repository's apprunner.yaml."""
    return {
        "CodeRepository": {
            "RepositoryUrl": repository_url,
            "SourceCodeVersion": {"Type": "BRANCH", "Value": branch},
            "CodeConfiguration": {"ConfigurationSource": "REPOSITORY"},
        },
        "AuthenticationConfiguration": {"ConnectionArn": connection},
        "AutoDeploymentsEnabled": automatic,
    }
