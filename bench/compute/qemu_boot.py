"""Times real boots on `oxstack up --driver qemu`: from POST /servers to
ACTIVE, and to the guest's DHCP line on its serial console (the line
`oxstack-guest: eth0 MAC IP/PREFIX` the test guest prints once it has a
lease). One server at a time; each is deleted before the next.

Usage: qemu_boot.py COUNT   (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME set)
Prints one `metric value unit` line per figure.
"""

import os
import statistics
import sys
import time

import requests

POLL_S = 0.05


def token_and_catalog(session):
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": os.environ["OS_USERNAME"], "domain": {"id": "default"},
            "password": os.environ["OS_PASSWORD"]}}},
        "scope": {"project": {"name": os.environ["OS_PROJECT_NAME"], "domain": {"id": "default"}}}}}
    response = session.post(os.environ["OS_AUTH_URL"] + "/auth/tokens", json=body, timeout=30)
    response.raise_for_status()
    return response.headers["X-Subject-Token"], response.json()["token"]["catalog"]


def endpoint(catalog, service_type):
    for service in catalog:
        if service["type"] == service_type:
            return next(e["url"] for e in service["endpoints"] if e["interface"] == "public")
    raise SystemExit(f"no {service_type} endpoint in the catalog")


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    session = requests.Session()
    token, catalog = token_and_catalog(session)
    nova = endpoint(catalog, "compute")
    neutron = endpoint(catalog, "network")
    glance = endpoint(catalog, "image")
    headers = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.37"}
    image = session.get(f"{glance}/v2/images?name=oxstack-guest", headers=headers, timeout=30).json()["images"][0]["id"]
    network = session.get(f"{neutron}/v2.0/networks?name=private", headers=headers, timeout=30).json()["networks"][0]["id"]
    to_active, to_dhcp = [], []
    for index in range(count):
        body = {"server": {"name": f"bench-qemu-{index}", "imageRef": image, "flavorRef": "42",
                           "networks": [{"uuid": network}]}}
        started = time.perf_counter()
        response = session.post(f"{nova}/servers", json=body, headers=headers, timeout=60)
        assert response.status_code == 202, (response.status_code, response.text[:300])
        server = response.json()["server"]["id"]
        active = dhcp = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and dhcp is None:
            if active is None:
                status = session.get(f"{nova}/servers/{server}", headers=headers, timeout=30).json()["server"]["status"]
                if status == "ERROR":
                    raise SystemExit(f"server {server} went to ERROR")
                if status == "ACTIVE":
                    active = time.perf_counter() - started
            else:
                output = session.post(f"{nova}/servers/{server}/action", json={"os-getConsoleOutput": {}},
                                      headers=headers, timeout=30).json()["output"]
                if any(line.startswith("oxstack-guest: eth0 ") and "/" in line for line in output.splitlines()):
                    dhcp = time.perf_counter() - started
            time.sleep(POLL_S)
        session.delete(f"{nova}/servers/{server}", headers=headers, timeout=30)
        while session.get(f"{nova}/servers/{server}", headers=headers, timeout=30).status_code != 404:
            time.sleep(0.2)
        if active is None or dhcp is None:
            raise SystemExit(f"server {server}: ACTIVE after {active}, DHCP line after {dhcp}")
        to_active.append(active)
        to_dhcp.append(dhcp)
        print(f"# boot {index}: ACTIVE {active:.2f} s, DHCP line {dhcp:.2f} s", flush=True)
    for name, values in (("qemu_post_to_active", to_active), ("qemu_post_to_dhcp_line", to_dhcp)):
        print(f"{name}_median {statistics.median(values):.3f} s")
        print(f"{name}_max {max(values):.3f} s")


if __name__ == "__main__":
    main()
