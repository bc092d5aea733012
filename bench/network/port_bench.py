#!/usr/bin/env python3
"""Benchmarks the port life cycle of a Networking (Neutron v2.0) API: create a
port, bind it to the network agent's host, delete it.

One cycle is three requests as an admin:
  POST /v2.0/ports                   {"port": {"network_id": ...}}
  PUT  /v2.0/ports/{id}              {"port": {"binding:host_id": HOST}}
  DELETE /v2.0/ports/{id}
HOST is the host of the first alive agent in GET /v2.0/agents (what
`openstack network agent list` shows). A cycle counts as an error unless the
binding returns binding:vif_type other than binding_failed and unbound.

It measures sequential cycles (latency of the whole cycle and of each
request, median and p99, and cycles per second), then CLIENTS threads
running cycles for DURATION seconds (cycles per second, errors). Every
request opens a new TCP connection, as the peer lab's client does. Output:
one "metric value unit" line per result.

Environment: OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME (an
admin), BENCH_PORT_SEQ [200], BENCH_PORT_CLIENTS [8], BENCH_PORT_DURATION [20].
The script creates its own network and subnet and deletes them at the end.
"""
import os
import statistics
import sys
import threading
import time
import uuid

import requests

AUTH_URL = os.environ.get("OS_AUTH_URL", "http://127.0.0.1:5000/v3").rstrip("/")
USER = os.environ.get("OS_USERNAME", "admin")
PASSWORD = os.environ["OS_PASSWORD"]
PROJECT = os.environ.get("OS_PROJECT_NAME", "admin")
SEQUENTIAL = int(os.environ.get("BENCH_PORT_SEQ", "200"))
CLIENTS = int(os.environ.get("BENCH_PORT_CLIENTS", "8"))
DURATION_S = float(os.environ.get("BENCH_PORT_DURATION", "20"))
TIMEOUT_S = 60
NO_PROXY = {"http": None, "https": None}


def emit(metric, value, unit):
    if isinstance(value, float):
        value = f"{value:.3f}" if abs(value) < 1000 else f"{value:.1f}"
    print(f"{metric} {value} {unit}", flush=True)


def percentile(values, p):
    """Returns the nearest-rank percentile p (0..100) of values."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * p // 100)))
    return ordered[int(rank) - 1]


def request(method, url, token=None, json=None):
    """Sends one request on a new connection and fails on a 4xx or 5xx."""
    headers = {"X-Auth-Token": token} if token else {}
    response = requests.request(method, url, headers=headers, json=json, timeout=TIMEOUT_S, proxies=NO_PROXY)
    if response.status_code >= 400:
        raise RuntimeError(f"{method} {url} returned {response.status_code}: {response.text[:300]}")
    return response


def authenticate():
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": USER, "domain": {"name": "Default"}, "password": PASSWORD}}},
        "scope": {"project": {"name": PROJECT, "domain": {"name": "Default"}}}}}
    response = request("POST", AUTH_URL + "/auth/tokens", json=body)
    catalog = response.json()["token"]["catalog"]
    for service in catalog:
        if service["type"] == "network":
            for endpoint in service["endpoints"]:
                if endpoint["interface"] == "public":
                    return response.headers["X-Subject-Token"], endpoint["url"].rstrip("/")
    sys.exit("no public network endpoint in the catalog")


class Cloud:
    def __init__(self):
        self.token, self.url = authenticate()
        agents = request("GET", self.url + "/v2.0/agents", self.token).json()["agents"]
        alive = [agent for agent in agents if agent.get("alive")]
        if not alive:
            sys.exit("no alive network agent in GET /v2.0/agents; ports cannot be bound")
        self.host = alive[0]["host"]
        name = "bench-ports-" + uuid.uuid4().hex[:8]
        network = request("POST", self.url + "/v2.0/networks", self.token,
                          {"network": {"name": name}}).json()["network"]
        self.network_id = network["id"]
        request("POST", self.url + "/v2.0/subnets", self.token,
                {"subnet": {"name": name, "network_id": self.network_id, "ip_version": 4,
                            "cidr": "10.199.0.0/16"}})

    def cycle(self, timings=None):
        """Creates, binds and deletes one port; records each request's ms."""
        marks = [time.perf_counter()]
        port = request("POST", self.url + "/v2.0/ports", self.token,
                       {"port": {"network_id": self.network_id}}).json()["port"]
        marks.append(time.perf_counter())
        try:
            bound = request("PUT", f"{self.url}/v2.0/ports/{port['id']}", self.token,
                            {"port": {"binding:host_id": self.host}}).json()["port"]
            marks.append(time.perf_counter())
        finally:
            request("DELETE", f"{self.url}/v2.0/ports/{port['id']}", self.token)
        marks.append(time.perf_counter())
        vif_type = bound.get("binding:vif_type")
        if vif_type in ("binding_failed", "unbound", None):
            raise RuntimeError(f"port {port['id']} was not bound to {self.host}: vif_type {vif_type}")
        if timings is not None:
            for name, start, end in zip(("create", "bind", "delete"), marks, marks[1:]):
                timings[name].append((end - start) * 1000.0)
            timings["cycle"].append((marks[-1] - marks[0]) * 1000.0)

    def remove(self):
        request("DELETE", f"{self.url}/v2.0/networks/{self.network_id}", self.token)


def run_sequential(cloud):
    timings = {"cycle": [], "create": [], "bind": [], "delete": []}
    started = time.perf_counter()
    for _ in range(SEQUENTIAL):
        cloud.cycle(timings)
    elapsed = time.perf_counter() - started
    for name in ("cycle", "create", "bind", "delete"):
        emit(f"port_{name}_median", statistics.median(timings[name]), "ms")
        emit(f"port_{name}_p99", percentile(timings[name], 99), "ms")
    emit("port_sequential_samples", SEQUENTIAL, "count")
    emit("port_sequential_rate", SEQUENTIAL / elapsed, "ports/s")


def run_concurrent(cloud):
    done = [0] * CLIENTS
    errors = [0] * CLIENTS
    first_error = []
    stop_at = time.monotonic() + DURATION_S

    def client(index):
        while time.monotonic() < stop_at:
            try:
                cloud.cycle()
                done[index] += 1
            except Exception as error:  # counted and reported, the run goes on
                errors[index] += 1
                if not first_error:
                    first_error.append(str(error))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DURATION_S + 2 * TIMEOUT_S)
    elapsed = time.monotonic() - started
    emit(f"port_concurrent_{CLIENTS}_rate", sum(done) / elapsed, "ports/s")
    emit(f"port_concurrent_{CLIENTS}_cycles", sum(done), "count")
    emit(f"port_concurrent_{CLIENTS}_errors", sum(errors), "count")
    if first_error:
        print(f"# first error: {first_error[0]}", flush=True)


def main():
    cloud = Cloud()
    print(f"# binding host {cloud.host}; network {cloud.network_id}", flush=True)
    try:
        run_sequential(cloud)
        run_concurrent(cloud)
    finally:
        cloud.remove()


if __name__ == "__main__":
    main()
