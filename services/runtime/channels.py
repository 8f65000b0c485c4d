"""Options for every gRPC client channel to a service that may run as several replicas (ours or a model server)."""

# A URL naming several replicas ("ipv4:10.0.0.1:50051,10.0.0.2:50051", or a headless Service's
# "dns:///detector:50051") spreads calls over all of them: gRPC's default pins every call to the first. A replaced
# pod's new address is looked up within seconds, not gRPC's default 30 s.
REPLICA_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.dns_min_time_between_resolutions_ms", 2000),
]
