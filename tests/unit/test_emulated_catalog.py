from __future__ import annotations

import copy

from bot.catalog import parse_catalog
from integrations.emulators.launcher import emulated_catalog
from integrations.emulators.world import default_world


def test_every_service_of_the_world_is_in_the_catalog() -> None:
    world = default_world(bad_latest=True)
    extra = copy.deepcopy(world.services["medicalcor-api"])
    extra.name = "medicalcor-svc-01"
    world.services[extra.name] = extra

    catalog = parse_catalog(emulated_catalog(world, "http://127.0.0.1:8080"))

    assert catalog.services["api"].cloud_run_service == "medicalcor-api"
    assert catalog.services["web"].cloud_run_service == "medicalcor-web"
    svc = catalog.services["svc-01"]
    assert svc.cloud_run_service == "medicalcor-svc-01"
    assert svc.health_url == "http://127.0.0.1:8080/medicalcor-svc-01/health"


def test_the_default_world_has_just_its_two_services() -> None:
    catalog = parse_catalog(emulated_catalog(default_world(), "http://127.0.0.1:8080"))

    assert sorted(catalog.services) == ["api", "web"]
