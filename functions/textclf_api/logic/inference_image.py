"""The image a rollout's model runs, picked when the rollout starts.

Real-time endpoints run textclf's own server image by default (template ``InferenceServer``):
``INFERENCE_SERVER_IMAGE_URI`` as given when the stack names one, else the newest image pushed
to the stack's repository (``make inference-image``), pinned by its digest so the model runs
exactly the bytes found now, whatever is pushed later. While that repository holds no image --
a new stack, before anyone built one -- the HF inference DLC serves, and the rollout says why
(:attr:`ServedImage.fallback`); a rollout never fails for want of textclf's image. Serverless
endpoints and ``InferenceServer=dlc`` run the DLC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from textclf_api import aws
from textclf_api.settings import Settings

TEXTCLF_SERVER: Final = "textclf"
#: ECR's answer for a repository that does not exist (deleted, or another account's name).
NO_REPOSITORY: Final = "RepositoryNotFoundException"


@dataclass(frozen=True)
class ServedImage:
    uri: str
    #: Why the DLC serves although textclf's server was asked for; "" when nothing fell back.
    fallback: str = ""


def repository_parts(uri: str) -> tuple[str, str]:
    """``(registry id, repository name)`` of ``<account>.dkr.ecr.<region>.<suffix>/<name>``."""
    host, _, name = uri.partition("/")
    return host.split(".", 1)[0], name


def newest_image(repository_uri: str, ecr: Any) -> str | None:
    """``<repository>@sha256:...`` of the newest tagged image in the repository; None when it has
    none. Tagged only: a multi-platform push also stores untagged per-platform manifests."""
    registry, name = repository_parts(repository_uri)
    pages = ecr.get_paginator("describe_images").paginate(
        registryId=registry, repositoryName=name, filter={"tagStatus": "TAGGED"}
    )
    images = [image for page in pages for image in page.get("imageDetails", [])]
    if not images:
        return None
    newest = max(images, key=lambda image: image["imagePushedAt"])
    return f"{repository_uri}@{newest['imageDigest']}"


def served_image(settings: Settings, dlc_image: str, ecr: Any = None) -> ServedImage:
    """The image a model of this stack's endpoint runs; ``dlc_image`` is the DLC (the fallback)."""
    if settings.inference_server != TEXTCLF_SERVER or settings.endpoint_type != "RealTime":
        return ServedImage(dlc_image)
    if settings.inference_server_image_uri:
        return ServedImage(settings.inference_server_image_uri)
    repository = settings.inference_repository_uri
    if not repository:
        return ServedImage(dlc_image, "served by the HF DLC: INFERENCE_REPOSITORY_URI names no repository")
    try:
        pinned = newest_image(repository, ecr or aws.ecr())
    except ClientError as exc:
        if aws.error_code(exc) != NO_REPOSITORY:
            return ServedImage(
                dlc_image, f"served by the HF DLC: could not list {repository} ({aws.error_code(exc)})"
            )
        pinned = None
    except BotoCoreError as exc:
        return ServedImage(
            dlc_image, f"served by the HF DLC: could not list {repository} ({type(exc).__name__})"
        )
    if pinned is None:
        return ServedImage(
            dlc_image,
            f"served by the HF DLC: no textclf image in {repository} yet "
            f"(make inference-image ECR_REPO={repository})",
        )
    return ServedImage(pinned)
