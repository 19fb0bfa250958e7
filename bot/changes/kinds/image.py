"""Image: redeploy a Cloud Run service with another container image (the runbook's
"Rollback to Specific Image Tag").

`/rollback api --image v1.2.2` (a tag: same registry and repository as the image the
service runs) or a full reference (`…/medicalcor-api:v1.2.2`, `…@sha256:…`). One
UpdateService changes only `template.containers[0].image` (plus the revision's name
and the label naming the change); see `cloud_run_common.TemplateChange`.

spec:   {cloud_run_service, region, image}
before: what served (split, LATEST or not) and what the service ran (image, config digest)
after:  {traffic, revision, image}                   read back after the change
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from bot.blockers import check_image
from bot.catalog import Catalog
from bot.changes.kind import ChangeRequest, Usage
from bot.changes.kinds import cloud_run_common as common
from bot.changes.kinds.template import TemplateKind
from bot.deps import Deps
from bot.ids import KindName
from bot.parsing import CommandError, shorten
from bot.plans import CheckItem, PlanError
from integrations.cloud_run import ServiceSnapshot, TemplateEdit

IMAGE = "--image"
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REFERENCE = re.compile(
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)+"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$")


def repository(image: str) -> str:
    """`registry/path/name` of an image reference, without its tag or digest."""
    name = image.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def short_image(image: str) -> str:
    """The part people recognise: the tag, or the digest's first 12 hex digits."""
    if "@sha256:" in image:
        return "sha256:" + image.rsplit("@sha256:", 1)[1][:12]
    tail = image.rsplit("/", 1)[-1]
    return tail.split(":", 1)[1] if ":" in tail else "latest"


class ImageKind(TemplateKind):
    name = KindName.IMAGE.value
    options: Mapping[str, bool] = MappingProxyType({IMAGE: True})  # takes a value?

    def usage(self) -> Sequence[Usage]:
        return (Usage(f"/rollback <service> {IMAGE} <tag or reference>",
                      "redeploy with another image (a tag: same registry and repository)"),)

    def parse(self, catalog: Catalog, service: str, args: list[str],
              options: dict[str, str | None]) -> ChangeRequest | CommandError | None:
        if IMAGE not in options:
            return None
        image = options[IMAGE] or ""
        if args:
            return CommandError(
                f"`{IMAGE}` takes no revision (got `{shorten(' '.join(args))}`).",
                f"For example `/rollback {service} {IMAGE} v1.2.2`.")
        if not (_TAG.match(image) or ("/" in image and _REFERENCE.match(image))):
            return CommandError(
                f"`{shorten(image)}` is not an image tag or reference.",
                f"Give a tag (`/rollback {service} {IMAGE} v1.2.2`: same registry and "
                "repository as the image the service runs) or a full reference "
                "(`…/medicalcor-api:v1.2.2` or `…@sha256:<64 hex digits>`).")
        return ChangeRequest(self.name, service, {"image": image})

    # --- what TemplateKind asks of it -------------------------------------------------

    async def wanted(self, deps: Deps, request: ChangeRequest,
                     snapshot: ServiceSnapshot) -> dict[str, Any] | PlanError:
        given = str(request.args["image"])
        image = given if "/" in given else f"{repository(snapshot.template.image)}:{given}"
        return {"image": image}

    def edit(self, spec: Mapping[str, Any]) -> TemplateEdit:
        return TemplateEdit(image=str(spec["image"]))

    def words(self, deps: Deps, service: str, spec: Mapping[str, Any],
              snapshot: ServiceSnapshot) -> common.TemplateWords:
        image, old = str(spec["image"]), snapshot.template.image
        return common.TemplateWords(
            headline=f"{service} → image {short_image(image)}",
            action=f"rollback of {service} to image {short_image(image)}",
            changes=(f"image {short_image(old)} → {short_image(image)} (`{image}`)",),
            checked=(
                CheckItem("Target image identified", "ok", image),
                CheckItem("Image differs from what the service runs",
                          "fail" if image == old else "ok",
                          "it runs this image already" if image == old
                          else f"runs {short_image(old)} now", overridable=False),
                *check_image(image, deps.catalog.services[service].blockers),
            ),
            command_flags=f"--image={image}",
            question=f"Deploy {short_image(image)} to {service} as a new revision?")

    def achieved(self, spec: Mapping[str, Any], config: common.RevisionConfig) -> str | None:
        if config.image != spec["image"]:
            return f"the new revision runs {config.image}, not {spec['image']}"
        return None
